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
    if (s < 86400 * 365) return `${Math.floor(s / (86400 * 30))} mo ago`;
    return `${Math.floor(s / (86400 * 365))} y ago`;
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
  /* The browser's time zone at a time, as its offset from UTC ("UTC", "UTC+01:00", "UTC-05:30"): every
     absolute time says it. An offset names one zone (a short name may not: IST is India's, Ireland's and
     Israel's) and costs no lookup (Intl's zone names took 48 ms on their first use: the run page's overview
     waited for it). */
  function zoneName(ts) {
    const d = ts ? new Date(ts * 1000) : new Date();
    const off = -d.getTimezoneOffset();
    return off === 0 ? "UTC" : `UTC${off > 0 ? "+" : "-"}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  }
  const fmtTimeZone = (ts) => (ts === null || ts === undefined ? "" : `${fmtTime(ts)} ${zoneName(ts)}`);
  /* a relative time ("5 min ago"), the absolute time with its zone on hover */
  const timeEl = (ts) => el("span", { class: "when", title: fmtTimeZone(ts) }, fmtAgo(ts));
  /* an absolute time with its zone, the relative time on hover */
  const whenEl = (ts) => (ts === null || ts === undefined ? "" : el("time", { datetime: new Date(ts * 1000).toISOString(), title: fmtAgo(ts) }, fmtTimeZone(ts)));

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
  /* Past the 12 fixed colours, hues step by the golden angle (lightness cycling): no colour repeats,
     so a comparison of 25 or 200 runs tells every run apart. */
  const colour = (i) => (i < palette.length ? palette[i]
    : `hsl(${((i - palette.length) * 137.508 + 17) % 360 | 0}, ${[72, 58, 80][i % 3]}%, ${[44, 34, 56][(i >> 1) % 3]}%)`);

  /* resolves once what the page holds now has been painted (a frame, then a task): the text comes
     on screen before plotly.js's second of parsing. In a hidden tab (no frames) a task. */
  const afterPaint = () => new Promise((resolve) => (document.hidden ? setTimeout(resolve, 0)
    : requestAnimationFrame(() => setTimeout(resolve, 0))));

  /* plotly.js, loaded when a chart is first drawn: pages with charts preload it (<link id="plotly-src">)
     without running it, and run it once what the page holds has been painted (its parse takes the
     page's thread for half a second), so what they show in text comes first. Resolves to window.Plotly. */
  let plotlyLoad = null;
  function plotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!plotlyLoad) {
      plotlyLoad = afterPaint().then(() => new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = document.getElementById("plotly-src")?.getAttribute("href") || "/vendor/plotly.min.js";
        script.onload = () => resolve(window.Plotly);
        script.onerror = () => { plotlyLoad = null; reject(new Error("the chart library (plotly.js) could not be loaded from the studio")); };
        document.head.append(script);
      }));
    }
    return plotlyLoad;
  }

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

  /* Chart colours from the page's theme (studio.css variables: light, or dark when the system is). */
  const darkQuery = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  function chartTheme() {
    const css = getComputedStyle(document.documentElement);
    const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    return { dark: !!darkQuery?.matches, text: v("--chart-text", "#344054"), bg: v("--panel", "#fff"), grid: v("--chart-grid", "#eef0f3"),
      hoverBg: v("--panel", "#fff"), hoverBorder: v("--border-strong", "#cfd6df") };
  }
  /* call fn when the system switches between light and dark (charts redraw in the new colours) */
  const onThemeChange = (fn) => darkQuery?.addEventListener?.("change", fn);

  function plotLayout(extra) {
    const t = chartTheme();
    return Object.assign({
      margin: { l: 56, r: 16, t: 8, b: 40 },
      font: { family: getComputedStyle(document.body).fontFamily, size: 11, color: t.text },
      paper_bgcolor: t.bg, plot_bgcolor: t.bg,
      xaxis: { title: { text: "step" }, gridcolor: t.grid, zeroline: false },
      yaxis: { gridcolor: t.grid, zeroline: false, automargin: true },
      hoverlabel: { bgcolor: t.hoverBg, bordercolor: t.hoverBorder, font: { color: t.text } },
      legend: { font: { color: t.text } },
      showlegend: false, hovermode: "closest",
    }, extra || {});
  }

  // -- chart controls shared by the run page and compare -------------------------------------

  /* Exponential moving average, debiased like TensorBoard's (the first points are not pulled to 0);
     a missing value (inf, nan: null) stays a gap and does not move the average. */
  function ema(values, weight) {
    if (!(weight > 0)) return values.slice();
    const out = new Array(values.length);
    let acc = 0, n = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "number" || !Number.isFinite(v)) { out[i] = null; continue; }
      acc = acc * weight + (1 - weight) * v;
      n++;
      out[i] = acc / (1 - Math.pow(weight, n));
    }
    return out;
  }

  function quantile(sorted, q) {
    const pos = (sorted.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  }
  /* The y range that leaves out outliers: the 1st to 99th percentile of the values, padded; in
     log10 units for a log axis (positive values only). null when there is nothing to clip to. */
  function clippedRange(lists, log, lowQ = 0.01, highQ = 0.99) {
    const all = [];
    for (const list of lists) for (const v of list) if (typeof v === "number" && Number.isFinite(v) && (!log || v > 0)) all.push(log ? Math.log10(v) : v);
    if (all.length < 3) return null;
    all.sort((a, b) => a - b);
    let lo = quantile(all, lowQ), hi = quantile(all, highQ);
    if (!(hi > lo)) { const p = lo === 0 ? 1 : Math.abs(lo) * 0.1; return [lo - p, hi + p]; }
    const pad = (hi - lo) * 0.08;
    return [lo - pad, hi + pad];
  }

  /* A time as plotly's date axis reads it: local wall-clock time, no zone (plotly has none). */
  function plotDate(ts) {
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
  }
  /* ...and back: a plotly date ("2026-12-02 03:24:28.5") or a number (ms) to epoch seconds */
  function fromPlotDate(value) {
    if (typeof value === "number") return value / 1000;
    const m = /^(\d{4})-(\d\d)-(\d\d)(?:[ T](\d\d?)(?::(\d\d)(?::(\d\d(?:\.\d+)?))?)?)?/.exec(String(value));
    if (!m) return NaN;
    const sec = Number(m[6] || 0);
    return new Date(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), Math.floor(sec), Math.round((sec % 1) * 1000)).getTime() / 1000;
  }

  const X_MODES = { step: "step", wall: "wall time", relative: "relative time" };
  /* x values of a series for an x mode: steps, wall-clock dates, or seconds since t0 */
  function xValues(s, mode, t0) {
    if (mode === "wall") return s.times.map(plotDate);
    if (mode === "relative") { const z = t0 ?? s.times[0] ?? 0; return s.times.map((t) => t - z); }
    return s.steps.slice();
  }
  function xAxis(mode) {
    if (mode === "wall") return { type: "date", title: { text: `wall time (${zoneName()})` } };
    if (mode === "relative") return { type: "linear", title: { text: "relative time (s since start)" } };
    return { type: "linear", title: { text: "step" } };
  }
  /* per point: its step and its time with the zone (the hover shows run, step, value and time) */
  const hoverData = (s) => s.steps.map((step, i) => [step, fmtTimeZone(s.times[i])]);
  const hoverTemplate = (label) => `%{fullData.name}<br>step %{customdata[0]}<br>${label || "value"} %{y}<br>%{customdata[1]}<extra></extra>`;

  /* The y axis: linear or log, around a constant series, or clipped to the percentiles. */
  function yAxisFor(lists, { log = false, clip = false } = {}) {
    const axis = { type: log ? "log" : "linear" };
    if (clip) {
      const range = clippedRange(lists, log);
      if (range) return Object.assign(axis, { autorange: false, range });
    }
    const base = valueAxis(lists);
    if (base.autorange || !log) return Object.assign(axis, base);
    const [lo, hi] = base.range;
    return Object.assign(axis, lo > 0 ? { autorange: false, range: [Math.log10(lo), Math.log10(hi)] } : { autorange: true });
  }

  // -- a page's chart view: settings for every chart, and per chart, kept in the URL ---------------
  // ?smooth=0.6&log=1&x=wall&clip=1&full=NAME&charts={"NAME":{"log":false}} (the run page and compare)
  const X_KEYS = Object.keys(X_MODES);
  const clampSmooth = (v) => { const n = Number(v); return Number.isFinite(n) ? Math.min(0.99, Math.max(0, n)) : 0; };
  /* a chart's own settings from a URL: only known keys, each checked (a hand-edited link may hold anything) */
  function cleanPer(per) {
    const out = Object.create(null);  // keyed by metric names: "__proto__" and "constructor" are names too
    if (!per || typeof per !== "object" || Array.isArray(per)) return out;
    for (const [name, o] of Object.entries(per)) {
      if (!o || typeof o !== "object" || Array.isArray(o)) continue;
      const c = {};
      if ("smooth" in o) c.smooth = clampSmooth(o.smooth);
      if ("log" in o) c.log = !!o.log;
      if (X_KEYS.includes(o.x)) c.x = o.x;
      if ("clip" in o) c.clip = !!o.clip;
      if (Object.keys(c).length) out[name] = c;
    }
    return out;
  }
  /* the view of a page's charts from its URL's query (a URLSearchParams) */
  function readChartView(q) {
    let per = {};
    try { per = JSON.parse(q.get("charts") || "{}"); } catch (e) { per = {}; }
    return { smooth: clampSmooth(q.get("smooth")), log: q.get("log") === "1", x: X_KEYS.includes(q.get("x")) ? q.get("x") : "step",
      clip: q.get("clip") === "1", full: q.get("full") || "", per: cleanPer(per) };
  }
  /* ...and back: the query parameters of a view (for setQuery), defaults left out */
  const chartViewQuery = (view) => ({ smooth: view.smooth || "", log: view.log, x: view.x === "step" ? "" : view.x, clip: view.clip,
    full: view.full, charts: Object.keys(view.per).length ? JSON.stringify(view.per) : "" });
  /* the settings one chart draws with: the page's, and its own where it has them */
  const chartSettings = (view, name) => Object.assign({ smooth: view.smooth, log: view.log, x: view.x, clip: view.clip }, view.per[name] || {});
  /* one setting for one chart: kept apart from the page's only where it differs */
  function setOwnSetting(view, name, key, value) {
    const own = Object.assign(Object.create(null), view.per[name]);
    if (value === view[key]) delete own[key]; else own[key] = value;
    if (Object.keys(own).length) view.per[name] = own; else delete view.per[name];
  }
  /* one setting for the page: every chart takes it (their own values of it go) */
  function setPageSetting(view, key, value) {
    view[key] = value;
    for (const name of Object.keys(view.per)) {
      delete view.per[name][key];
      if (!Object.keys(view.per[name]).length) delete view.per[name];
    }
  }

  const fmtSmooth = (v) => (v > 0 ? v.toFixed(2) : "off");
  const xOptions = (value) => X_KEYS.map((k) => { const o = el("option", { value: k }, X_MODES[k]); o.selected = k === value; return o; });
  function smoothInput(value, attrs) {
    const input = el("input", Object.assign({ type: "range", min: "0", max: "0.99", step: "0.01", value: String(value) }, attrs));
    input.value = String(value);
    return input;
  }
  /* a slider drags through many values: fn once a frame, the last one given */
  function perFrame() {
    let pending = null;
    return (fn) => { const first = !pending; pending = fn; if (first) requestAnimationFrame(() => { const f = pending; pending = null; f?.(); }); };
  }

  /* The four settings (smoothing, log, x axis, clipping) as controls, for the page's toolbar (`ids`:
     the element ids' prefix, as "chart" gives #chart-smooth) or one chart (classes .c-smooth, ...).
     onChange(key, value) is called when one changes; sync(settings) shows settings. */
  function settingControls({ ids, label, onChange }) {
    const id = (name) => (ids ? `${ids}-${name}` : undefined);
    const cls = (name) => (ids ? undefined : `c-${name}`);
    const k = {
      smooth: smoothInput(0, { id: id("smooth"), class: cls("smooth"), "aria-label": `Smoothing of ${label}` }),
      smoothOut: el("output", { id: id("smooth-value"), class: cls("smooth-value"), for: id("smooth") }, "off"),
      log: el("input", { type: "checkbox", id: id("log"), class: cls("log"), "aria-label": `log scale of ${label}` }),
      x: el("select", { class: `input small${ids ? "" : " c-x"}`, id: id("x"), "aria-label": `x axis of ${label}` }, xOptions("step")),
      clip: el("input", { type: "checkbox", id: id("clip"), class: cls("clip"), "aria-label": `clip outliers of ${label}` }),
    };
    const soon = perFrame();
    k.smooth.addEventListener("input", () => {
      const v = clampSmooth(k.smooth.value);
      k.smoothOut.textContent = fmtSmooth(v);
      soon(() => onChange("smooth", v));
    });
    k.log.addEventListener("change", () => onChange("log", k.log.checked));
    k.clip.addEventListener("change", () => onChange("clip", k.clip.checked));
    k.x.addEventListener("change", () => onChange("x", k.x.value));
    const items = [
      el("label", { class: "check", title: "exponential moving average; the raw line stays faint behind" }, "Smoothing", k.smooth, k.smoothOut),
      el("label", { class: "check" }, k.log, ids ? "log scale" : "log"),
      el("label", { class: "check" }, ids ? "x axis" : "x", k.x),
      el("label", { class: "check", title: "y axis from the 1st to the 99th percentile: spikes leave the view" }, k.clip, "clip outliers")];
    function sync(st) {
      k.smooth.value = String(st.smooth); k.smoothOut.textContent = fmtSmooth(st.smooth);
      k.log.checked = st.log; k.x.value = st.x; k.clip.checked = st.clip;
    }
    return { k, items, sync };
  }

  // four corners (a glyph for it is missing from many fonts)
  function fullIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 16 16"); svg.setAttribute("width", "13"); svg.setAttribute("height", "13"); svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M1 6V1h5M10 1h5v5M15 10v5h-5M6 15H1v-5");
    path.setAttribute("fill", "none"); path.setAttribute("stroke", "currentColor"); path.setAttribute("stroke-width", "1.8");
    svg.append(path);
    return svg;
  }

  /* A chart's card: its name (as text), `meta` and buttons in the head (settings, full screen, and
     `extra`), its own settings (hidden until the settings button), then `div`, the chart. */
  function chartCard({ name, div, meta, extra, onChange, onFull, attrs }) {
    const controls = settingControls({ label: name, onChange });
    const box = el("div", { class: "chart-controls", hidden: true }, controls.items);
    const settingsButton = el("button", { type: "button", class: "icon-button c-settings", title: "Settings of this chart", "aria-label": `Settings of ${name}`, "aria-expanded": "false" }, "⚙");
    const fullButton = el("button", { type: "button", class: "icon-button c-full", title: "Full screen", "aria-label": `Full screen ${name}`, "aria-pressed": "false" }, fullIcon());
    const title = el("h2", { title: name }, name);
    const card = el("div", Object.assign({ class: "panel chart-card", dataset: { metric: name } }, attrs || {}),
      el("div", { class: "chart-head" }, title, meta || null, settingsButton, fullButton, extra || null), box, div);
    const showControls = (open) => {
      box.hidden = !open;
      settingsButton.setAttribute("aria-expanded", String(open));
      resizeChart(div);
    };
    settingsButton.addEventListener("click", () => showControls(box.hidden));
    fullButton.addEventListener("click", () => onFull?.());
    return { card, div, title, controls, box, settingsButton, fullButton, showControls };
  }

  /* plotly's size follows its box (full screen, a panel opened): only for a drawn, displayed chart */
  function resizeChart(div) {
    if (!div || div.offsetParent === null || !div.data || !window.Plotly) return;
    Promise.resolve(window.Plotly.Plots.resize(div)).catch(() => {});
  }
  /* Full screen: the chart of `name` over the page, or none (""). `cards`: [name, {card, div, fullButton}]
     pairs (a Map). Esc closes it: each page listens, see onEscape. */
  function showFull(cards, name) {
    let any = false;
    for (const [n, c] of cards) {
      const on = n === name;
      any = any || on;
      if (c.card.classList.contains("fullscreen") === on) continue;
      c.card.classList.toggle("fullscreen", on);
      c.fullButton.setAttribute("aria-pressed", String(on));
      c.fullButton.title = on ? "Close full screen (Esc)" : "Full screen";
      requestAnimationFrame(() => resizeChart(c.div));
    }
    document.body.classList.toggle("chart-fullscreen", any);
    return any;
  }

  /* A chart's lines for one series: `main` (the series, or with smoothing its moving average) and
     `raw` (with smoothing: the series as logged, faint behind, not in the legend; else null). */
  function seriesTraces(s, { x, colour, name, label = "value", smooth = 0, meta }) {
    const customdata = hoverData(s);
    const line = { x, y: s.values.slice(), type: "scatter", mode: s.steps.length <= 50 ? "lines+markers" : "lines", name, meta,
      line: { width: 1.6, color: colour }, marker: { size: 4 }, connectgaps: false, customdata, hovertemplate: hoverTemplate(label) };
    if (!(smooth > 0)) return { raw: null, main: line };
    const raw = Object.assign(line, { mode: "lines", line: { width: 1, color: colour }, opacity: 0.25, hoverinfo: "skip",
      hovertemplate: undefined, showlegend: false, meta: undefined });
    const main = { x, y: ema(s.values, smooth), type: "scatter", mode: "lines", name, meta, line: { width: 2, color: colour }, connectgaps: false,
      customdata: customdata.map((d, i) => [d[0], d[1], fmtValue(s.values[i])]),
      hovertemplate: `%{fullData.name}<br>step %{customdata[0]}<br>${label} smoothed %{y} (raw %{customdata[2]})<br>%{customdata[1]}<extra></extra>` };
    return { raw, main };
  }
  /* the axes of a chart drawn with these settings (`lists`: its series' values) */
  function chartAxes(layout, st, lists) {
    layout.xaxis = Object.assign({}, layout.xaxis, xAxis(st.x));
    layout.yaxis = Object.assign({}, layout.yaxis, yAxisFor(lists, { log: st.log, clip: st.clip }));
    return layout;
  }

  /* A <details> dropdown (a picker) closes on Esc (focus back on its summary) and on a click outside it. */
  function dropdown(details) {
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && details.open) { details.open = false; details.querySelector("summary")?.focus(); }
    });
    document.addEventListener("click", (ev) => { if (details.open && !details.contains(ev.target)) details.open = false; });
    return details;
  }

  /* localStorage that may be off (private windows): a value or the fallback */
  function stored(key, fallback) {
    try { const v = localStorage.getItem(key); return v === null ? fallback : JSON.parse(v); } catch (e) { return fallback; }
  }
  function store(key, value) { try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* not kept */ } }

  /* With tokens on (runlab server): who is logged in, and a way to log out, in the top bar. */
  async function showSession() {
    const bar = document.querySelector(".topbar");
    if (!bar || document.body.dataset.page === "login") return;
    let me;
    try { me = await api("/api/whoami"); } catch (e) { return; }
    if (!me || !me.auth) return;
    const form = el("form", { method: "post", action: "/logout", class: "session" },
      el("span", { class: "who", title: `token ${me.token_id || ""}` }, `${me.name} (${me.role})`),
      el("button", { type: "submit", id: "logout" }, "Log out"));
    bar.appendChild(form);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", showSession);
  else showSession();

  /* A user-timing mark, the first time only: what the benchmarks (bench_studio.py, bench_runs_table.py)
     read from a page, from its navigation's start. */
  function markOnce(name) {
    if (!performance.getEntriesByName(name).length) performance.mark(name);
  }

  window.Studio = {
    pageData, api, markOnce, send, ApiError, el, fmtTime, fmtTimeZone, zoneName, whenEl, fmtAgo,
    plotly, afterPaint, chartTheme, onThemeChange, ema, clippedRange, plotDate, fromPlotDate, X_MODES, xValues, xAxis, hoverData, hoverTemplate, yAxisFor,
    clampSmooth, readChartView, chartViewQuery, chartSettings, setOwnSetting, setPageSetting, fmtSmooth, perFrame, settingControls,
    fullIcon, chartCard, resizeChart, showFull, seriesTraces, chartAxes, dropdown,
    stored, store, fmtDuration, fmtValue, fmtBytes, timeEl, statusBadge, runLink,
    tagChips, tagValue, isNumericSummary, valueAxis, emptyState, errorNotice, kvTable, setQuery, debounce, colour, plotConfig, plotLayout, plotText,
  };
})();
