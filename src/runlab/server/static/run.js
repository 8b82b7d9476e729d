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
    document.getElementById("inputs").replaceChildren(run.inputs.length
      ? el("pre", { class: "code" }, JSON.stringify(run.inputs, null, 2))
      : el("p", { class: "muted" }, "No inputs: datasets passed to a submitted run show here."));
    document.getElementById("environment").replaceChildren(run.environment
      ? el("pre", { class: "code" }, JSON.stringify(run.environment, null, 2))
      : el("p", { class: "muted" }, "No environment: runs started with start_logging() use the Python that runs them; submitted runs show their environment definition here."));
  }

  async function loadDetails() {
    run = await api(base);
    renderOverview();
  }

  // -- metrics ---------------------------------------------------------------------------
  const isNumber = (v) => typeof v === "number" || v === null;
  const chartable = (m) => m.kind === "scalar" && m.count >= 2 && isNumber(m.last);

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
    const last = y.length ? y[y.length - 1] : null;
    c.card.dataset.points = String(y.length);
    c.card.dataset.count = String(c.count);
    c.card.dataset.last = last === null || last === undefined ? "" : String(last);
    c.meta.textContent = `${c.count.toLocaleString()} points` + (c.downsampled ? ` (${y.length.toLocaleString()} drawn)` : "") +
      ` · last ${S.fmtValue(last)}`;
  }

  async function drawFull(c) {
    const s = await api(`${base}/metrics/${encodeURIComponent(c.name)}`, { points: MAX_POINTS });
    c.count = s.count; c.downsampled = s.downsampled;
    const trace = { x: s.steps, y: s.values, type: "scatter", mode: s.steps.length <= 50 ? "lines+markers" : "lines",
      line: { width: 1.6, color: S.colour(c.index) }, marker: { size: 4 }, name: c.name, connectgaps: false };
    await Plotly.react(c.div, [trace], S.plotLayout(), S.plotConfig);
    chartMeta(c);
  }

  async function extend(c) {
    const s = await api(`${base}/metrics/${encodeURIComponent(c.name)}`, { points: MAX_POINTS, start: c.count });
    if (s.steps.length) await Plotly.extendTraces(c.div, { x: [s.steps], y: [s.values] }, [0]);
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
        if (!want || want.count <= c.count) break;
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
    document.getElementById("charts").append(card);
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
  }

  function renderOther(m, s) {
    if (s.error) return S.errorNotice(s.error);
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
  const logState = { files: [], current: null, offset: 0, stream: null, retry: null };
  const logText = document.getElementById("log-text");
  const follow = document.getElementById("log-follow");

  function renderLogList() {
    const list = document.getElementById("log-list");
    if (!logState.files.length) {
      list.replaceChildren();
      logText.hidden = true;
      document.querySelector(".log-bar").hidden = true;
      const empty = document.getElementById("logs-empty") || el("div", { id: "logs-empty" });
      empty.replaceChildren(S.emptyState("No logs yet",
        "Submitted runs write their driver and build logs here while they run (azureml-logs/70_driver_log.txt). Other runs can upload logs:",
        "run.upload_file('logs/train.log', 'train.log')"));
      document.querySelector(".log-view").append(empty);
      return;
    }
    document.getElementById("logs-empty")?.remove();
    logText.hidden = false;
    document.querySelector(".log-bar").hidden = false;
    list.replaceChildren(...logState.files.map((f) => el("li", { class: f.name === logState.current ? "active" : null, dataset: { name: f.name },
      onclick: () => selectLog(f.name) }, f.name, el("span", { class: "size" }, S.fmtBytes(f.size)))));
  }

  function closeLogStream() {
    if (logState.stream) { logState.stream.close(); logState.stream = null; }
    clearTimeout(logState.retry);
  }

  function appendLog(text) {
    const atBottom = logText.scrollHeight - logText.scrollTop - logText.clientHeight < 40;
    logText.append(document.createTextNode(text));
    if (logText.textContent.length > 4_000_000) logText.textContent = logText.textContent.slice(-3_000_000);
    if (follow.checked || atBottom) logText.scrollTop = logText.scrollHeight;
  }

  function openLogStream() {
    closeLogStream();
    const name = logState.current;
    const url = `${base}/logs/stream?name=${encodeURIComponent(name)}&offset=${logState.offset}`;
    const source = new EventSource(url);
    logState.stream = source;
    source.addEventListener("log", (e) => { const d = JSON.parse(e.data); logState.offset = d.offset; appendLog(d.text); });
    source.addEventListener("reset", () => { logState.offset = 0; logText.textContent = ""; });
    source.addEventListener("end", () => closeLogStream());
    source.addEventListener("timeout", () => openLogStream());
    source.onerror = () => {
      closeLogStream();
      if (run && !["Completed", "Failed", "Canceled"].includes(run.status)) logState.retry = setTimeout(openLogStream, 2000);
    };
  }

  async function selectLog(name) {
    closeLogStream();
    logState.current = name;
    renderLogList();
    document.getElementById("log-name").textContent = name;
    document.getElementById("log-download").href = `${base}/files/${name.split("/").map(encodeURIComponent).join("/")}?download=true`;
    logText.textContent = "";
    try {
      const tail = await api(`${base}/logs/tail`, { name, lines: 5000 });
      if (logState.current !== name) return;
      logText.textContent = tail.text;
      logState.offset = tail.end;
      logText.scrollTop = logText.scrollHeight;
    } catch (err) {
      logState.offset = 0;
      logText.textContent = err.status === 404 ? "" : err.message;
    }
    openLogStream();
  }

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
  let events = null;
  function openEvents() {
    events = new EventSource(`${base}/events`);
    events.addEventListener("status", (e) => {
      const d = JSON.parse(e.data);
      if (!run) return;
      Object.assign(run, { status: d.status, started_at: d.started_at, ended_at: d.ended_at, duration_s: d.duration_s, timeline: d.timeline });
      renderHeader(); renderTimeline(d.timeline); renderDetails();
    });
    events.addEventListener("metrics", (e) => applyMetrics(JSON.parse(e.data)));
    events.addEventListener("logs", (e) => applyLogFiles(JSON.parse(e.data)));
    events.addEventListener("end", () => { events.close(); loadDetails().catch(() => {}); });
    events.addEventListener("timeout", () => { events.close(); openEvents(); });
  }

  // -- start -----------------------------------------------------------------------------
  try {
    await loadDetails();
  } catch (err) {
    document.getElementById("main").replaceChildren(S.errorNotice(err));
    return;
  }
  showTab(location.hash.slice(1) || "overview");
  try { await applyMetrics(await api(`${base}/metrics`)); } catch (err) { document.getElementById("charts").replaceChildren(S.errorNotice(err)); }
  if (!["Completed", "Failed", "Canceled"].includes(run.status)) openEvents();
  document.body.dataset.ready = "1";
})();
