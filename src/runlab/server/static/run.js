/* Run page: status and timeline, live metric charts, live logs, files, snapshot, children. */
"use strict";
(async function () {
  const S = window.Studio;
  const { api, el } = S;
  const runId = S.pageData.run_id;
  const base = `/api/runs/${encodeURIComponent(runId)}`;
  const MAX_POINTS = 2000;  // per chart; longer series come downsampled (extremes kept)
  const PREFERRED_LOGS = ["azureml-logs/70_driver_log.txt", "user_logs/std_log.txt", "logs/azureml/driver.log"];

  let run = null;
  let summaries = [];
  const charts = new Map();
  const loaded = new Set();

  // -- tabs ------------------------------------------------------------------------------
  const tabs = [...document.querySelectorAll("#tabs a")];
  function showTab(name) {
    if (!tabs.some((a) => a.dataset.tab === name)) name = "overview";
    tabs.forEach((a) => a.classList.toggle("active", a.dataset.tab === name));
    document.querySelectorAll(".tab-panel").forEach((p) => (p.hidden = p.id !== `tab-${name}`));
    if (!loaded.has(name)) { loaded.add(name); lazyTabs[name]?.(); }
    if (name === "metrics") charts.forEach((c) => Plotly.Plots.resize(c.div));
  }
  window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));

  // -- overview --------------------------------------------------------------------------
  function renderHeader() {
    document.getElementById("run-title").textContent = run.display_name || run.run_id;
    document.getElementById("run-status").replaceChildren(S.statusBadge(run.status));
    document.getElementById("run-id").textContent = run.run_id;
    const crumbs = document.getElementById("crumbs");
    crumbs.replaceChildren(el("a", { href: "/experiments" }, "Experiments"), el("span", { class: "sep" }, "/"),
      el("a", { href: `/runs?experiment=${encodeURIComponent(run.experiment)}` }, run.experiment),
      ...(run.parent_run_id ? [el("span", { class: "sep" }, "/"), el("a", { href: `/runs/${encodeURIComponent(run.parent_run_id)}` }, "parent run")] : []));
    document.getElementById("run-actions").replaceChildren(
      el("a", { class: "button", href: `/runs?experiment=${encodeURIComponent(run.experiment)}` }, "Compare with other runs"));
    document.getElementById("children-count").textContent = run.child_count || "";
  }

  function renderTimeline(steps) {
    document.getElementById("timeline").replaceChildren(...steps.map((s) =>
      el("li", { class: `${s.state} ${s.status}`, dataset: { status: s.status, state: s.state } }, el("b", {}, s.status),
        el("span", { class: "when" }, s.at ? S.fmtTime(s.at).slice(11) : s.state === "pending" ? "" : "—"))));
  }

  function renderDetails() {
    const rows = [
      ["Status", S.statusBadge(run.status)],
      ["Experiment", el("a", { href: `/runs?experiment=${encodeURIComponent(run.experiment)}` }, run.experiment)],
      ["Run ID", el("span", { class: "mono" }, run.run_id)],
      ["Display name", run.display_name || ""],
      ["Type", run.run_type],
      ["Compute target", run.target],
      ["User", run.user || ""],
      ["Created", S.fmtTime(run.created_at)],
      ["Started", S.fmtTime(run.started_at)],
      ["Ended", S.fmtTime(run.ended_at)],
      ["Duration", S.fmtDuration(run.duration_s)],
      run.parent_run_id ? ["Parent", el("a", { href: `/runs/${encodeURIComponent(run.parent_run_id)}` }, run.parent_run_id)] : null,
      run.child_count ? ["Child runs", el("a", { href: "#children" }, String(run.child_count))] : null,
      run.description ? ["Description", run.description] : null,
    ].filter(Boolean);
    const dl = document.getElementById("details");
    dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { field: k } }, v)]));
    if (run.error) {
      dl.append(el("dt", {}, "Error"), el("dd", {}, el("div", { class: "error-box" }, run.error.message || JSON.stringify(run.error),
        run.error.traceback ? el("details", {}, el("summary", {}, "traceback"), el("pre", {}, run.error.traceback)) : null)));
    }
  }

  function renderOverview() {
    renderHeader();
    renderTimeline(run.timeline);
    renderDetails();
    const tags = document.getElementById("tags");
    const chips = S.tagChips(run.tags);
    tags.replaceChildren(...(chips.length ? chips : [el("p", { class: "muted" }, "No tags: add some with run.tag('key', 'value').")]));
    document.getElementById("properties").replaceChildren(S.kvTable(run.properties));
    document.getElementById("arguments").replaceChildren(run.arguments.length
      ? el("pre", { class: "code" }, run.arguments.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "))
      : el("p", { class: "muted" }, "No arguments: submitted runs show their script arguments here."));
    window.RunInputs?.render(run);  // the Inputs card (static/run_inputs.js), hidden when the run has none
    document.getElementById("environment").replaceChildren(run.environment
      ? el("pre", { class: "code" }, JSON.stringify(run.environment, null, 2))
      : el("p", { class: "muted" }, "No environment: runs started with start_logging() use the Python that runs them; submitted runs show their environment definition here."));
  }

  async function loadDetails() {
    run = await api(base);
    renderOverview();
    loadModels().catch((err) => document.getElementById("models").replaceChildren(S.errorNotice(err)));
  }

  // the model versions registered from this run's files (run.register_model), linked to the models page
  async function loadModels() {
    const made = await api("/api/models", { run_id: runId });
    const card = document.getElementById("models-card");
    card.hidden = !made.length;
    document.getElementById("models").replaceChildren(...(made.length ? [el("table", { class: "grid", id: "models-table" },
      el("thead", {}, el("tr", {}, ["Model", "Version", "Files", "Tags"].map((h) => el("th", {}, h)))),
      el("tbody", {}, made.map((m) => el("tr", { dataset: { model: m.id } },
        el("td", {}, el("a", { href: `/models#${encodeURIComponent(m.id)}` }, m.name)), el("td", {}, String(m.version)),
        el("td", {}, `${m.file_count} (${S.fmtBytes(m.total_size)})`), el("td", { class: "tags" }, S.tagChips(m.tags))))))] : []));
  }

  // -- metrics ---------------------------------------------------------------------------
  const chartable = (m) => m.count >= 2 && S.isNumericSummary(m);

  function renderMetricSummary() {
    const box = document.getElementById("metric-summary");
    if (!summaries.length) { box.replaceChildren(el("p", { class: "muted" }, "No metrics yet: log some with run.log('loss', value).")); return; }
    box.replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "grid compact" }, el("thead", {}, el("tr", {}, ["Name", "Last", "Min", "Max", "Points"].map((h, i) => el("th", { class: i ? "num" : null }, h)))),
      el("tbody", {}, summaries.map((m) => el("tr", { dataset: { metric: m.name } },
        el("td", {}, chartable(m) ? el("a", { href: "#metrics" }, m.name) : m.name),
        el("td", { class: "num" }, m.kind === "scalar" ? S.fmtValue(m.last) : m.kind),
        el("td", { class: "num" }, S.fmtValue(m.min)), el("td", { class: "num" }, S.fmtValue(m.max)),
        el("td", { class: "num" }, m.count.toLocaleString())))))));
  }

  function chartMeta(c) {
    const y = c.div.data && c.div.data[0] ? c.div.data[0].y : [];
    let last = y.length ? y[y.length - 1] : null;
    const summary = summaries.find((m) => m.name === c.name);
    if ((last === null || last === undefined) && !c.zoom && summary) last = summary.last;  // inf, -inf, nan: a gap in the line
    c.card.dataset.points = String(y.length);
    c.card.dataset.count = String(c.count);
    c.card.dataset.last = last === null || last === undefined ? "" : String(last);
    c.meta.textContent = `${c.count.toLocaleString()} points` + (c.downsampled ? ` (${y.length.toLocaleString()} drawn)` : "") +
      ` · last ${S.fmtValue(last)}`;
  }

  const traceOf = (c, s) => ({ x: s.steps, y: s.values, type: "scatter", mode: s.steps.length <= 50 ? "lines+markers" : "lines",
    line: { width: 1.6, color: S.colour(c.index) }, marker: { size: 4 }, name: S.plotText(c.name), connectgaps: false });

  function layoutOf(ys) {
    const layout = S.plotLayout();
    layout.yaxis = Object.assign({}, layout.yaxis, S.valueAxis(ys));
    return layout;
  }

  async function drawFull(c) {
    const s = await api(`${base}/metrics/${encodeURIComponent(c.name)}`, { points: MAX_POINTS });
    c.count = s.count; c.downsampled = s.downsampled; c.zoom = null;
    await Plotly.react(c.div, [traceOf(c, s)], layoutOf([s.values]), S.plotConfig);
    delete c.card.dataset.zoom;
    chartMeta(c);
    if (!c.hooked) { c.hooked = true; c.div.on("plotly_relayout", (ev) => onRelayout(c, ev)); }
  }

  // A zoom into a downsampled series asks the server for the visible steps at full resolution
  // (up to the point budget); a double-click (autorange) goes back to the whole series.
  function onRelayout(c, ev) {
    let lo = ev["xaxis.range[0]"], hi = ev["xaxis.range[1]"];
    if (Array.isArray(ev["xaxis.range"])) [lo, hi] = ev["xaxis.range"];
    if (lo !== undefined && hi !== undefined) {
      if (c.zoom && c.zoom[0] === lo && c.zoom[1] === hi) return;  // our own redraw
      if (c.downsampled || c.zoom) zoomTo(c, lo, hi).catch((err) => (c.meta.textContent = err.message));
    } else if (ev["xaxis.autorange"] && c.zoom) {
      c.zoom = null;
      drawFull(c).catch((err) => (c.meta.textContent = err.message));
    }
  }

  async function zoomTo(c, lo, hi) {
    c.zoom = [lo, hi];
    const token = (c.zoomToken = (c.zoomToken || 0) + 1);
    const s = await api(`${base}/metrics/${encodeURIComponent(c.name)}`,
      { points: MAX_POINTS, min_step: Math.floor(lo), max_step: Math.ceil(hi) });
    if (token !== c.zoomToken || !c.zoom) return;
    const layout = layoutOf([s.values]);
    layout.xaxis = Object.assign({}, layout.xaxis, { range: [lo, hi], autorange: false });
    await Plotly.react(c.div, [traceOf(c, s)], layout, S.plotConfig);
    c.card.dataset.zoom = `${lo},${hi}`;
    chartMeta(c);
  }

  async function extend(c) {
    const s = await api(`${base}/metrics/${encodeURIComponent(c.name)}`, { points: MAX_POINTS, start: c.count });
    if (s.steps.length) {
      await Plotly.extendTraces(c.div, { x: [s.steps], y: [s.values] }, [0]);
      const axis = S.valueAxis([c.div.data[0].y]);  // a constant series that varies now, or the other way
      if (axis.autorange !== c.div.layout.yaxis.autorange || String(axis.range) !== String(c.div.layout.yaxis.range)) {
        await Plotly.relayout(c.div, axis.autorange ? { "yaxis.autorange": true } : { "yaxis.autorange": false, "yaxis.range": axis.range });
      }
    }
    c.count = s.start + s.steps.length;
    chartMeta(c);
  }

  async function refreshChart(c) {
    if (c.busy) { c.again = true; return; }
    c.busy = true;
    try {
      do {
        c.again = false;
        const want = summaries.find((m) => m.name === c.name);
        if (!want || want.count <= c.count || c.zoom) break;  // a zoomed chart keeps its view
        if (c.drawn && !c.downsampled && want.count <= MAX_POINTS) await extend(c);
        else { await drawFull(c); c.drawn = true; }
      } while (c.again);
    } catch (err) {
      c.meta.textContent = err.message;
    } finally { c.busy = false; }
  }

  function chartFor(m) {
    let c = charts.get(m.name);
    if (c) return c;
    const div = el("div", { class: "chart" });
    const meta = el("span", { class: "meta" }, "");
    const card = el("div", { class: "panel chart-card", dataset: { metric: m.name } },
      el("div", { class: "chart-head" }, el("h2", {}, m.name), meta), div);
    if (m.name.startsWith("sys/")) {  // system metrics (the agent's samples): their own section
      document.getElementById("system-charts").append(card);
      document.getElementById("system-section").hidden = false;
    } else document.getElementById("charts").append(card);
    c = { name: m.name, div, card, meta, count: 0, drawn: false, downsampled: false, busy: false, again: false, index: charts.size };
    charts.set(m.name, c);
    return c;
  }

  const otherCache = new Map();
  async function renderOtherMetrics() {
    const others = summaries.filter((m) => !chartable(m));
    const box = document.getElementById("other-metrics");
    if (!summaries.length) {
      box.replaceChildren(S.emptyState("No metrics yet", "Log them from the run; charts appear and update live:",
        "run.log('loss', loss)            # a chart per metric\nrun.log_row('acc by class', cls='cat', acc=0.9)"));
      return;
    }
    const singles = others.filter((m) => m.kind === "scalar");
    const parts = [];
    if (singles.length) {
      parts.push(el("div", { class: "panel card" }, el("h2", {}, "Values"), S.kvTable(Object.fromEntries(singles.map((m) => [m.name, S.fmtValue(m.last)])))));
    }
    for (const m of others.filter((x) => x.kind !== "scalar")) {
      const key = `${m.name}:${m.count}`;
      if (!otherCache.has(key)) {
        otherCache.set(key, api(`${base}/metrics/${encodeURIComponent(m.name)}`, { points: 1000 }).catch((err) => ({ error: err })));
      }
      const s = await otherCache.get(key);
      parts.push(el("div", { class: "panel card", dataset: { metric: m.name } }, el("h2", {}, `${m.name} `, el("span", { class: "faint" }, m.kind)), renderOther(m, s)));
    }
    box.replaceChildren(el("div", { class: "cards" }, parts));
    window.StudioEval?.drawPending(box);
  }

  function renderOther(m, s) {
    if (s.error) return S.errorNotice(s.error);
    if (window.StudioEval?.KINDS.includes(m.kind) && s.values.length) return window.StudioEval.element(m, s);
    if (m.kind === "image") {
      return el("div", { class: "images" }, s.values.slice(-12).map((name) => el("figure", {},
        el("a", { href: `${base}/files/${name.split("/").map(encodeURIComponent).join("/")}`, target: "_blank" },
          el("img", { src: `${base}/files/${name.split("/").map(encodeURIComponent).join("/")}`, alt: name, loading: "lazy" })),
        el("figcaption", {}, name))));
    }
    if (m.kind === "row") {
      const table = {};
      s.values.forEach((part) => Object.entries(part || {}).forEach(([k, v]) => (table[k] = (table[k] || []).concat(v))));
      const cols = Object.keys(table), n = Math.max(0, ...cols.map((k) => table[k].length));
      return el("div", { class: "table-wrap" }, el("table", { class: "grid" }, el("thead", {}, el("tr", {}, cols.map((k) => el("th", {}, k)))),
        el("tbody", {}, Array.from({ length: Math.min(n, 200) }, (_, i) => el("tr", {}, cols.map((k) => el("td", {}, S.fmtValue(table[k][i]))))))));
    }
    const last = s.values[s.values.length - 1];
    return el("pre", { class: "code" }, JSON.stringify(last, null, 1));
  }

  async function applyMetrics(list) {
    summaries = list;
    renderMetricSummary();
    const work = [];
    for (const m of summaries) if (chartable(m)) work.push(refreshChart(chartFor(m)));
    work.push(renderOtherMetrics());
    await Promise.all(work);
  }

  // -- logs ------------------------------------------------------------------------------
  // The log box holds a window of whole lines read by byte offsets (/logs/range): the end first,
  // earlier pages on demand, appended text while the run goes. A 100 MB log is never loaded whole.
  const LOG_PAGE_BYTES = 512 * 1024;
  const MAX_LOG_LINES = 50_000;  // lines kept in the box; the oldest go (and can be paged in again)
  const logState = { files: [], current: null, start: 0, end: 0, nextLine: 1, partial: false, busy: false, hits: [], hit: -1 };
  const logText = document.getElementById("log-text");
  const logBox = document.getElementById("log-box");
  const follow = document.getElementById("log-follow");
  const earlier = document.getElementById("log-earlier");
  const search = document.getElementById("log-search");
  const encoder = new TextEncoder();

  function renderLogList() {
    const list = document.getElementById("log-list");
    if (!logState.files.length) {
      list.replaceChildren();
      logBox.hidden = true;
      document.querySelector(".log-bar").hidden = true;
      const empty = document.getElementById("logs-empty") || el("div", { id: "logs-empty" });
      empty.replaceChildren(S.emptyState("No logs yet",
        "Submitted runs write their driver and build logs here while they run (azureml-logs/70_driver_log.txt). Other runs can upload logs:",
        "run.upload_file('logs/train.log', 'train.log')"));
      document.querySelector(".log-view").append(empty);
      return;
    }
    document.getElementById("logs-empty")?.remove();
    logBox.hidden = false;
    document.querySelector(".log-bar").hidden = false;
    list.replaceChildren(...logState.files.map((f) => el("li", { class: f.name === logState.current ? "active" : null, dataset: { name: f.name },
      onclick: () => selectLog(f.name) }, f.name, el("span", { class: "size" }, S.fmtBytes(f.size)))));
  }

  const lineDiv = (n, offset, text) => el("div", { dataset: { n: String(n), offset: String(offset) } }, text);

  // split text read from byte `offset` into line elements numbered from `first`
  function linesOf(text, offset, first) {
    const parts = text.split("\n");
    const ended = parts[parts.length - 1] === "";
    if (ended) parts.pop();
    const divs = parts.map((line, i) => {
      const div = lineDiv(first + i, offset, line);
      offset += encoder.encode(line).length + 1;
      return div;
    });
    return { divs, ended };
  }

  function appendLog(text) {
    if (!text) return;
    let offset = logState.end;
    if (logState.partial && logText.lastElementChild) {  // the last line was still being written
      const cut = text.indexOf("\n");
      const head = cut < 0 ? text : text.slice(0, cut);
      logText.lastElementChild.textContent += head;
      offset += encoder.encode(head).length + (cut < 0 ? 0 : 1);
      if (cut < 0) { logState.end = offset; return; }
      logState.partial = false;
      text = text.slice(cut + 1);
    }
    const { divs, ended } = linesOf(text, offset, logState.nextLine);
    logText.append(...divs);
    logState.nextLine += divs.length - (ended || !divs.length ? 0 : 1);
    logState.partial = !ended && divs.length > 0;
    logState.end = offset + encoder.encode(text).length;
    while (logText.childElementCount > MAX_LOG_LINES) logText.firstElementChild.remove();
    logState.start = Number(logText.firstElementChild?.dataset.offset || logState.start);
    earlier.hidden = logState.start === 0;
    if (follow.checked) logBox.scrollTop = logBox.scrollHeight;
  }

  const rangeOf = (params) => api(`${base}/logs/range`, { name: logState.current, ...params });

  async function selectLog(name) {
    logState.current = name;
    renderLogList();
    document.getElementById("log-name").textContent = name;
    document.getElementById("log-download").href = `${base}/files/${name.split("/").map(encodeURIComponent).join("/")}?download=true`;
    logText.replaceChildren();
    Object.assign(logState, { start: 0, end: 0, nextLine: 1, partial: false, hits: [], hit: -1 });
    const size = logState.files.find((f) => f.name === name)?.size || 0;
    try {
      const r = await rangeOf({ offset: Math.max(0, size - LOG_PAGE_BYTES), length: 4 * 1024 * 1024 });
      if (logState.current !== name) return;
      Object.assign(logState, { start: r.start, end: r.start, nextLine: r.first_line });
      appendLog(r.text);
      logState.end = r.end;
      earlier.hidden = r.start === 0;
      logBox.scrollTop = logBox.scrollHeight;
    } catch (err) {
      if (err.status !== 404) logText.replaceChildren(S.errorNotice(err));
    }
    runSearch();
  }

  async function loadEarlier() {
    if (!logState.current || logState.start === 0) return;
    const offset = Math.max(0, logState.start - LOG_PAGE_BYTES);
    const r = await rangeOf({ offset, length: logState.start - offset });
    if (!r.text) { earlier.hidden = true; return; }
    const { divs } = linesOf(r.text, r.start, r.first_line);
    const before = logBox.scrollHeight;
    logText.prepend(...divs);
    logBox.scrollTop += logBox.scrollHeight - before;  // keep the lines in view where they were
    logState.start = r.start;
    earlier.hidden = r.start === 0;
    runSearch();
  }

  // what was appended since the last read (live runs)
  async function followLog() {
    const name = logState.current;
    if (!name || logState.busy) return;
    logState.busy = true;
    try {
      const r = await rangeOf({ offset: logState.end, length: 4 * 1024 * 1024, exact: true, count_lines: false });
      if (logState.current !== name) return;
      if (r.size < logState.end) { await selectLog(name); return; }  // replaced by a shorter file
      appendLog(r.text);
      logState.end = r.end;
      if (search.value) runSearch(false);
    } catch (err) { /* not written yet, or gone: the next poll tries again */ } finally { logState.busy = false; }
  }

  function runSearch(jump = true) {
    const needle = search.value.toLowerCase();
    logState.hits.forEach((d) => d.classList.remove("hit", "current"));
    logState.hits = needle ? [...logText.children].filter((d) => d.textContent.toLowerCase().includes(needle)) : [];
    logState.hits.forEach((d) => d.classList.add("hit"));
    logState.hit = Math.min(logState.hit, logState.hits.length - 1);
    if (jump && logState.hits.length) showHit(0);
    else updateHitCount();
  }
  function updateHitCount() {
    document.getElementById("log-search-count").textContent = !search.value ? "" : logState.hits.length
      ? `${logState.hit + 1} of ${logState.hits.length}${logState.start > 0 ? " (loaded lines)" : ""}` : "no match";
  }
  function showHit(i) {
    if (!logState.hits.length) return;
    logState.hits[logState.hit]?.classList.remove("current");
    logState.hit = (i + logState.hits.length) % logState.hits.length;
    const div = logState.hits[logState.hit];
    div.classList.add("current");
    follow.checked = false;  // reading a match: stop jumping to the end
    logBox.scrollTop = div.offsetTop - logBox.clientHeight / 2;
    updateHitCount();
  }
  search.addEventListener("input", S.debounce(() => runSearch(), 150));
  search.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); showHit(logState.hit + (e.shiftKey ? -1 : 1)); } });
  earlier.addEventListener("click", () => loadEarlier().catch((err) => logText.prepend(S.errorNotice(err))));
  follow.addEventListener("change", () => { if (follow.checked) logBox.scrollTop = logBox.scrollHeight; });
  logBox.addEventListener("wheel", (e) => { if (e.deltaY < 0) follow.checked = false; }, { passive: true });

  function applyLogFiles(files) {
    logState.files = files;
    if (!loaded.has("logs")) return;
    if (!logState.current && files.length) {
      const names = files.map((f) => f.name);
      selectLog(PREFERRED_LOGS.find((n) => names.includes(n)) || names[0]);
    } else renderLogList();
  }

  async function loadLogs() {
    try { logState.files = await api(`${base}/logs`); } catch (err) { document.querySelector(".log-view").prepend(S.errorNotice(err)); return; }
    logState.current = null;
    applyLogFiles(logState.files);
    if (!logState.files.length) renderLogList();
  }

  // -- files, snapshot, children -----------------------------------------------------------
  const fileUrl = (path, name) => `${base}/${path}/${name.split("/").map(encodeURIComponent).join("/")}`;
  function fileTable(rows, path) {
    return el("div", { class: "table-wrap" }, el("table", { class: "grid", id: `${path}-table` },
      el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", { class: "num" }, "Size"), el("th", {}, ""))),
      el("tbody", {}, rows.map((f) => {
        const slash = f.name.lastIndexOf("/");
        return el("tr", { dataset: { name: f.name } },
          el("td", {}, el("a", { href: fileUrl(path, f.name), target: "_blank" }, slash >= 0 ? el("span", { class: "faint" }, f.name.slice(0, slash + 1)) : null, f.name.slice(slash + 1))),
          el("td", { class: "num" }, S.fmtBytes(f.size)),
          el("td", {}, el("a", { class: "button small", href: `${fileUrl(path, f.name)}?download=true` }, "Download")));
      }))));
  }

  async function loadFiles() {
    const box = document.getElementById("files");
    try {
      const files = await api(`${base}/files`);
      box.replaceChildren(files.length ? fileTable(files, "files") : S.emptyState("No files yet",
        "A submitted run's ./outputs and ./logs are uploaded when it ends. Upload files from any run with:",
        "run.upload_file('outputs/model.pkl', 'model.pkl')"));
    } catch (err) { box.replaceChildren(S.errorNotice(err)); }
  }

  async function loadSnapshot() {
    const box = document.getElementById("snapshot");
    try {
      const snap = await api(`${base}/snapshot`);
      const git = snap.git ? ` · git ${String(snap.git.commit || "").slice(0, 10)}${snap.git.dirty ? " (dirty)" : ""}` : "";
      box.replaceChildren(el("div", { class: "toolbar" }, el("span", {}, `${snap.file_count} files, ${S.fmtBytes(snap.total_bytes)}${git}`),
        el("span", { class: "faint mono" }, snap.source || "")),
        fileTable(snap.files.map((f) => ({ name: f.path, size: f.size })), "snapshot"));
    } catch (err) {
      box.replaceChildren(err.status === 404 ? S.emptyState("No snapshot", err.message) : S.errorNotice(err));
    }
  }

  async function loadChildren() {
    const box = document.getElementById("children");
    try {
      const page = await api(`${base}/children`, { limit: 500 });
      if (!page.total) {
        box.replaceChildren(S.emptyState("No child runs", "Start child runs from this run:", "child = run.child_run('fold-1')"));
        return;
      }
      box.replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "grid" },
        el("thead", {}, el("tr", {}, ["Run", "Status", "Created", "Duration", "Tags"].map((h) => el("th", {}, h)))),
        el("tbody", {}, page.runs.map((r) => el("tr", { dataset: { runId: r.run_id } }, el("td", {}, S.runLink(r)), el("td", {}, S.statusBadge(r.status)),
          el("td", {}, S.timeEl(r.created_at)), el("td", {}, S.fmtDuration(r.duration_s)), el("td", { class: "tags" }, S.tagChips(r.tags))))))));
    } catch (err) { box.replaceChildren(S.errorNotice(err)); }
  }

  const lazyTabs = { logs: loadLogs, files: loadFiles, snapshot: loadSnapshot, children: loadChildren };

  // -- live ------------------------------------------------------------------------------
  // A live run is polled (short requests, no stream held open), and only while its tab is visible:
  // a browser allows six HTTP/1.1 connections per host, so tabs that each held a stream would lock
  // the studio at the seventh.
  const LIVE_MS = 1000;
  const terminal = (status) => ["Completed", "Failed", "Canceled"].includes(status);
  const live = { timer: null, ticks: 0, counts: "" };

  async function liveTick() {
    const [fresh, metrics] = await Promise.all([api(base), api(`${base}/metrics`)]);
    const ended = terminal(fresh.status);
    if (fresh.status !== run.status || fresh.started_at !== run.started_at || fresh.ended_at !== run.ended_at) {
      run = fresh;
      renderOverview();
    }
    const counts = metrics.map((m) => `${m.name}:${m.count}`).join("|");
    if (counts !== live.counts) { live.counts = counts; await applyMetrics(metrics); }
    if (live.ticks++ % 3 === 0 || ended) applyLogFiles(await api(`${base}/logs`));
    if (loaded.has("logs")) await followLog();
    if (ended) loadModels().catch(() => {});
    return ended;
  }

  function scheduleLive() {
    clearTimeout(live.timer);
    if (document.hidden || !run || terminal(run.status)) return;
    live.timer = setTimeout(async () => {
      if (document.hidden) return;
      try { if (await liveTick()) return; } catch (err) { /* the server restarts, the store is busy: poll again */ }
      scheduleLive();
    }, LIVE_MS);
  }
  document.addEventListener("visibilitychange", () => { if (document.hidden) clearTimeout(live.timer); else scheduleLive(); });

  // -- start -----------------------------------------------------------------------------
  try {
    await loadDetails();
  } catch (err) {
    document.getElementById("main").replaceChildren(S.errorNotice(err));
    return;
  }
  showTab(location.hash.slice(1) || "overview");
  try { await applyMetrics(await api(`${base}/metrics`)); } catch (err) { document.getElementById("charts").replaceChildren(S.errorNotice(err)); }
  live.counts = summaries.map((m) => `${m.name}:${m.count}`).join("|");
  scheduleLive();
  document.body.dataset.ready = "1";
})();
