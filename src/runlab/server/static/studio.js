/* runlab studio: helpers every page uses (window.Studio). No framework, no build step. */
"use strict";
(function () {
  const pageData = JSON.parse(document.getElementById("page-data").textContent || "{}");

  class ApiError extends Error {
    constructor(message, status, type) { super(message); this.status = status; this.type = type; }
  }

  /* GET /api/...: params may hold arrays (repeated keys). Errors carry the server's message. */
  async function api(path, params) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v === undefined || v === null || v === "") continue;
      if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, x));
      else url.searchParams.set(k, v);
    }
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" } });
    } catch (err) {
      throw new ApiError("the studio server cannot be reached: is `runlab studio` still running?", 0, "NetworkError");
    }
    if (response.status === 401 && location.pathname !== "/login") {  // a server's session ended: log in again
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`, type = "HTTPError";
      try { const body = await response.json(); message = body.error.message; type = body.error.type; } catch (e) { /* not JSON */ }
      throw new ApiError(message, response.status, type);
    }
    return response.json();
  }

  /* POST/PUT/PATCH/DELETE /api/...: JSON in and out, with the session's CSRF token (the runlab_csrf
     cookie, which only this server's pages can read) in X-CSRF-Token, as a runlab server requires. */
  async function send(method, path, body) {
    const csrf = (document.cookie.split("; ").find((c) => c.startsWith("runlab_csrf=")) || "").slice(12);
    const headers = { Accept: "application/json", "X-CSRF-Token": decodeURIComponent(csrf) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(new URL(path, location.origin), { method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ApiError("the studio server cannot be reached: is `runlab studio` still running?", 0, "NetworkError");
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`, type = "HTTPError";
      try { const b = await response.json(); message = b.error.message; type = b.error.type; } catch (e) { /* not JSON */ }
      throw new ApiError(message, response.status, type);
    }
    return response.status === 204 ? null : response.json();
  }

  /* el("a", {href: "/x", class: "y"}, "text", child, ...) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const pad = (n) => String(n).padStart(2, "0");
  function fmtTime(ts) {
    if (ts === null || ts === undefined) return "";
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function fmtAgo(ts) {
    if (ts === null || ts === undefined) return "";
    const s = Date.now() / 1000 - ts;
    if (s < 5) return "just now";
    if (s < 60) return `${Math.floor(s)} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    if (s < 86400 * 30) return `${Math.floor(s / 86400)} d ago`;
    return fmtTime(ts).slice(0, 10);
  }
  function fmtDuration(s) {
    if (s === null || s === undefined) return "";
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return `${h}h ${pad(m)}m ${pad(sec)}s`;
    if (m) return `${m}m ${pad(sec)}s`;
    return `${sec}s`;
  }
  function fmtValue(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      const a = Math.abs(v);
      if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
      return String(Number(v.toPrecision(5)));
    }
    if (typeof v === "string") return v;
    return JSON.stringify(v);
  }
  function fmtBytes(n) {
    if (n < 1024) return `${n} B`;
    const units = ["KB", "MB", "GB", "TB"];
    let i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
    return `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
  }
  const timeEl = (ts) => el("span", { title: fmtTime(ts) }, fmtAgo(ts));

  function statusBadge(status) { return el("span", { class: `status ${status}`, dataset: { status } }, status); }

  function runLink(run) {
    return el("a", { href: `/runs/${encodeURIComponent(run.run_id)}`, class: "run-link" },
      el("span", { class: "run-name" }, run.display_name || run.run_id,
        run.child_count ? el("span", { class: "count", title: `${run.child_count} child runs` }, run.child_count) : null),
      run.display_name ? el("span", { class: "run-id" }, run.run_id) : null);
  }

  /* A tag set without a value (run.tag("key")) is set all the same: its key, and a marker for the empty value. */
  function tagChips(tags) {
    return Object.entries(tags || {}).map(([k, v]) => v === ""
      ? el("span", { class: "tag no-value", title: `${k} (set, no value)`, dataset: { tag: k } }, el("b", {}, k), el("span", { class: "empty-value" }, "(no value)"))
      : el("span", { class: "tag", title: `${k}=${v}`, dataset: { tag: k } }, el("b", {}, k), `: ${v}`));
  }
  /* A cell of a tag: "" (set without a value) is not a missing tag. */
  const tagValue = (v) => (v === "" ? el("span", { class: "empty-value", title: "set, no value" }, "(no value)") : v);

  /* An empty state: a title, a sentence, and the code that fills it. */
  function emptyState(title, text, code) {
    return el("div", { class: "empty" }, el("h2", {}, title), text ? el("p", {}, text) : null, code ? el("pre", {}, code) : null);
  }
  function errorNotice(err) { return el("div", { class: "notice", role: "alert" }, err.message || String(err)); }

  function kvTable(obj) {
    const entries = Object.entries(obj || {});
    if (!entries.length) return el("p", { class: "muted" }, "none");
    return el("table", { class: "kv" }, el("tbody", {}, entries.map(([k, v]) =>
      el("tr", {}, el("td", {}, k), el("td", {}, typeof v === "object" ? JSON.stringify(v) : String(v))))));
  }

  /* Keep a page's state in its URL (so reload and links keep it). */
  function setQuery(params) {
    const url = new URL(location.href);
    url.search = "";
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === "" || v === false || (Array.isArray(v) && !v.length)) continue;
      if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, x));
      else url.searchParams.set(k, v === true ? "1" : v);
    }
    history.replaceState(null, "", url);
  }

  const debounce = (fn, ms) => { let t; return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); }; };

  const palette = ["#2563eb", "#e8590c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777",
    "#4f46e5", "#65a30d", "#0d9488", "#c2410c"];
  const colour = (i) => palette[i % palette.length];

  /* Nothing a chart shows may leave the machine: no "Edit in Chart Studio"/"Share" (they upload the
     data to Plotly's cloud), no logo link, no topojson from a CDN (we draw no maps: a local path). */
  const plotConfig = {
    displaylogo: false, responsive: true, showSendToCloud: false, showEditInChartStudio: false, showLink: false,
    plotlyServerURL: "", topojsonURL: "/vendor/topojson/", showTips: false,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "sendChartToCloud", "sendDataToCloud", "editInChartStudio"],
  };
  /* Text given to plotly is read as its own markup (<b>, <a href>): every name from a run goes
     through this, shown as written. */
  const plotText = (text) => String(text ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  /* A metric summary's series is numeric (chartable) when its values are numbers: the API sends a
     non-finite last value as "inf", "-inf" or "nan", and a series of strings has no min or max. */
  const NON_FINITE = new Set(["inf", "-inf", "nan"]);
  const isNumericSummary = (m) => m.kind === "scalar" &&
    (typeof m.last === "number" || m.last === null || (NON_FINITE.has(m.last) && (m.min !== null || m.max !== null)));

  /* The y axis for these values: plotly puts a constant series on v-1..v+1, where a constant 0.001
     sits at 0 on a -1..1 axis; an axis around the value shows it, ticks labelled with it. */
  function valueAxis(ys) {
    let lo = Infinity, hi = -Infinity;
    for (const list of ys) for (const v of list) if (typeof v === "number" && Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (lo !== hi) return { autorange: true };
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    return { autorange: false, range: [lo - pad, lo + pad] };
  }

  function plotLayout(extra) {
    return Object.assign({
      margin: { l: 56, r: 16, t: 8, b: 40 },
      font: { family: getComputedStyle(document.body).fontFamily, size: 11, color: "#344054" },
      paper_bgcolor: "#fff", plot_bgcolor: "#fff",
      xaxis: { title: { text: "step" }, gridcolor: "#eef0f3", zeroline: false },
      yaxis: { gridcolor: "#eef0f3", zeroline: false, automargin: true },
      showlegend: false, hovermode: "closest",
    }, extra || {});
  }

  window.Studio = {
    pageData, api, send, ApiError, el, fmtTime, fmtAgo, fmtDuration, fmtValue, fmtBytes, timeEl, statusBadge, runLink,
    tagChips, tagValue, isNumericSummary, valueAxis, emptyState, errorNotice, kvTable, setQuery, debounce, colour, plotConfig, plotLayout, plotText,
  };
})();
