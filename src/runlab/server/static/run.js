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

  /* The run's record, carried by the page (what GET /api/runs/ID answers) and shared: run_actions.js (the write actions)
     waits for `ready`, gives what a write answered to `update` (the page redraws from it), and hears
     of every change (a write, or a live run's new status) through `onChange`. */
  const listeners = [];
  let resolveReady, rejectReady;
  const ready = new Promise((resolve, reject) => { resolveReady = resolve; rejectReady = reject; });
  ready.catch(() => {});  // the page shows the error
  function setRun(details) {
    run = details;
    renderOverview();
    for (const fn of listeners) { try { fn(run); } catch (err) { console.error(err); } }
  }
  window.RunPage = {
    ready, get run() { return run; },
    update(details) { setRun(details); },
    onChange(fn) { listeners.push(fn); },
  };
  const charts = new Map();
  const loaded = new Set();

  // -- tabs ------------------------------------------------------------------------------
  const tabs = [...document.querySelectorAll("#tabs a")];
  function showTab(name) {
    if (!tabs.some((a) => a.dataset.tab === name)) name = "overview";
    tabs.forEach((a) => a.classList.toggle("active", a.dataset.tab === name));
    document.querySelectorAll(".tab-panel").forEach((p) => (p.hidden = p.id !== `tab-${name}`));
    if (!loaded.has(name)) { loaded.add(name); lazyTabs[name]?.(); }
    if (name === "metrics") charts.forEach((c) => resize(c));
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
        el("span", { class: "when", title: s.at ? `${S.fmtTimeZone(s.at)} · ${S.fmtAgo(s.at)}` : null }, s.at ? S.fmtTime(s.at).slice(11) : s.state === "pending" ? "" : "—"))));
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
      ["Created", S.whenEl(run.created_at)],
      ["Started", S.whenEl(run.started_at)],
      ["Ended", S.whenEl(run.ended_at)],
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
    document.getElementById("environment").replaceChildren(run.environment
      ? el("pre", { class: "code" }, JSON.stringify(run.environment, null, 2))
      : el("p", { class: "muted" }, "No environment: runs started with start_logging() use the Python that runs them; submitted runs show their environment definition here."));
  }

  async function loadDetails() {
    setRun(S.pageData.run || await api(base));  // the page carries the run's record as GET /api/runs/ID gives it
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

  // -- chart view: for the page and per chart, kept in the URL (a link reproduces the view) -------
  // ?smooth=0.6&log=1&x=wall&clip=1&full=a&charts={"a":{"log":false}} (Studio.readChartView, as compare),
  // q=loss (the search box), metric=a&metric=b (the charts shown: all without it; none: one empty metric=)
  const COLLAPSED_KEY = "runlab.charts.collapsed";
  const query = new URLSearchParams(location.search);
  const view = Object.assign(S.readChartView(query), { q: query.get("q") || "", metrics: query.getAll("metric") });
  function saveView() { S.setQuery(Object.assign(S.chartViewQuery(view), { q: view.q, metric: view.metrics })); }
  const settingsOf = (c) => S.chartSettings(view, c.name);
  const runStart = () => run.started_at || run.created_at;
  const runName = () => S.plotText(run.display_name || run.run_id);

  // a setting changed: a new x axis drops a zoom (its range is in the other axis's units)
  function redrawFor(c, key) {
    if (key === "x" && c.zoom) { c.zoom = null; c.yzoom = null; drawFull(c).catch((err) => (c.meta.textContent = err.message)); }
    else if (c.s) render(c).catch((err) => (c.meta.textContent = err.message));
  }
  function setChartSetting(c, key, value) {
    S.setOwnSetting(view, c.name, key, value);
    saveView(); syncControls(c); redrawFor(c, key);
  }
  function setPageSetting(key, value) {
    S.setPageSetting(view, key, value);
    saveView(); pageControls.sync(view);
    charts.forEach((c) => { syncControls(c); redrawFor(c, key); });
  }

  // the page's toolbar: search, the metric picker, and the settings every chart takes at once
  const chartsRoot = document.getElementById("charts");
  chartsRoot.className = "chart-groups";
  const pageControls = S.settingControls({ ids: "chart", label: "every chart", onChange: setPageSetting });
  pageControls.sync(view);
  const tb = {
    search: el("input", { type: "search", class: "input small", id: "chart-search", placeholder: "Search metrics", "aria-label": "Search metrics", autocomplete: "off" }),
    showAll: el("button", { type: "button", class: "button small", id: "chart-show-all", hidden: true }, "Show all"),
    note: el("span", { class: "faint", id: "chart-note" }),
  };
  tb.search.value = view.q;

  // the metric picker: a box per chart to show or hide it, a filter of the list (Esc and a click
  // outside close it, as the runs table's column picker)
  const pick = {
    count: el("span", { class: "count", id: "chart-picker-count" }),
    filter: el("input", { type: "search", class: "input small", id: "chart-picker-filter", placeholder: "Filter metrics", "aria-label": "Filter the metric list", autocomplete: "off" }),
    list: el("div", { class: "picker-list", id: "chart-picker-list" }),
    all: el("button", { type: "button", class: "button small", id: "chart-picker-all" }, "Show all"),
    none: el("button", { type: "button", class: "button small", id: "chart-picker-none" }, "Hide all"),
    empty: el("p", { class: "muted", id: "chart-picker-empty", hidden: true }, "no metric matches"),
  };
  const picker = S.dropdown(el("details", { class: "dropdown chart-picker", id: "chart-picker" },
    el("summary", { class: "button small", "aria-haspopup": "true" }, "Metrics ", pick.count),
    el("div", { class: "dropdown-body" }, el("div", { class: "picker-tools" }, pick.filter, pick.all, pick.none), pick.list, pick.empty)));
  // the charts shown: all of them is no list (charts that come later show too), none is [""]
  function choose(names) {
    const set = new Set(names.filter(Boolean));
    view.metrics = [...charts.keys()].every((n) => set.has(n)) ? [] : set.size ? [...set] : [""];
    if (view.full && !isChosen(view.full)) setFull("");
    saveView(); applyFilter();
  }
  const isChosen = (name) => !view.metrics.length || view.metrics.includes(name);
  const shownNames = () => [...charts.keys()].filter(isChosen);
  function renderPicker() {
    const needle = pick.filter.value.trim().toLowerCase();
    const have = new Map([...pick.list.children].map((label) => [label.dataset.metric, label]));
    let matching = 0;
    for (const name of charts.keys()) {
      let label = have.get(name);
      if (!label) {
        const box = el("input", { type: "checkbox", value: name });
        box.addEventListener("change", () => choose(box.checked ? [...shownNames(), name] : shownNames().filter((n) => n !== name)));
        label = el("label", { dataset: { metric: name }, title: name }, box, name);
        pick.list.append(label);
      }
      label.querySelector("input").checked = isChosen(name);
      label.hidden = !!needle && !name.toLowerCase().includes(needle);
      if (!label.hidden) matching++;
    }
    pick.empty.hidden = matching > 0 || !charts.size;
    const n = shownNames().length;
    pick.count.textContent = n === charts.size ? `(${n})` : `(${n} of ${charts.size})`;
  }
  pick.filter.addEventListener("input", renderPicker);
  pick.filter.addEventListener("keydown", (e) => { if (e.key === "Enter") e.preventDefault(); });
  pick.all.addEventListener("click", () => choose([...charts.keys()]));
  pick.none.addEventListener("click", () => choose([]));
  picker.addEventListener("toggle", () => { if (picker.open) pick.filter.focus(); });

  const toolbar = el("div", { class: "panel toolbar chart-toolbar", id: "chart-toolbar" },
    tb.search, picker, ...pageControls.items, tb.showAll, el("span", { class: "spacer" }), tb.note);
  toolbar.hidden = true;  // until there is a chart
  chartsRoot.before(toolbar);
  tb.search.addEventListener("input", S.debounce(() => { view.q = tb.search.value; saveView(); applyFilter(); }, 120));
  tb.showAll.addEventListener("click", () => choose([...charts.keys()]));

  // -- groups by the name's prefix (train/, val/, sys/), collapsed ones remembered ------------
  const groups = new Map();  // prefix -> { g, section, grid, head }
  const collapsed = new Set(S.stored(COLLAPSED_KEY, []));
  const groupOf = (name) => { const i = name.indexOf("/"); return i > 0 ? name.slice(0, i) : ""; };
  function groupFor(name) {
    const g = groupOf(name);
    if (groups.has(g)) return groups.get(g);
    let entry;
    const head = (label) => el("button", { type: "button", class: "group-head", "aria-expanded": "true", onclick: () => toggleGroup(g) },
      el("span", { class: "caret", "aria-hidden": "true" }), label, el("span", { class: "count" }));
    if (g === "sys") {  // system metrics (the agent's samples): their own section, below
      const section = document.getElementById("system-section");
      section.hidden = false;
      section.dataset.group = "sys";
      const h = head("System");
      section.querySelector(".section-title").replaceChildren(h);
      entry = { g, section, grid: document.getElementById("system-charts"), head: h };
    } else if (g === "") {
      const grid = el("div", { class: "charts", dataset: { group: "" } });
      chartsRoot.prepend(grid);
      entry = { g, section: grid, grid, head: null };
    } else {
      const grid = el("div", { class: "charts" });
      const h = head(`${g}/`);
      const section = el("section", { class: "chart-group", dataset: { group: g } }, el("h2", { class: "group-title" }, h), grid);
      chartsRoot.append(section);
      entry = { g, section, grid, head: h };
    }
    groups.set(g, entry);
    showCollapsed(entry);
    return entry;
  }
  function showCollapsed(entry) {
    if (!entry.head) return;
    const closed = collapsed.has(entry.g);
    entry.grid.hidden = closed;
    entry.section.classList.toggle("collapsed", closed);
    entry.head.setAttribute("aria-expanded", String(!closed));
  }
  function toggleGroup(g) {
    if (collapsed.has(g)) collapsed.delete(g); else collapsed.add(g);
    S.store(COLLAPSED_KEY, [...collapsed]);
    showCollapsed(groups.get(g));
    if (!collapsed.has(g)) charts.forEach((c) => { if (groupOf(c.name) === g) resize(c); });
  }

  // the search box and the chosen metrics: which charts show
  function applyFilter() {
    const needle = view.q.trim().toLowerCase();
    const chosen = view.metrics.length ? new Set(view.metrics) : null;
    const shown = new Map();
    let visible = 0;
    for (const c of charts.values()) {
      const show = (!needle || c.name.toLowerCase().includes(needle)) && (!chosen || chosen.has(c.name));
      const was = !c.card.hidden;
      c.card.hidden = !show;
      if (show) { visible++; if (!was) resize(c); }
      const g = groupOf(c.name), n = shown.get(g) || [0, 0];
      shown.set(g, [n[0] + (show ? 1 : 0), n[1] + 1]);
    }
    for (const [g, entry] of groups) {
      const [n, total] = shown.get(g) || [0, 0];
      entry.section.hidden = n === 0;
      entry.head?.querySelector(".count").replaceChildren(n === total ? String(total) : `${n} of ${total}`);
    }
    const hidden = charts.size - visible;
    tb.showAll.hidden = !chosen;
    tb.showAll.textContent = `Show all (${hidden} hidden)`;
    tb.note.textContent = charts.size && !visible ? "no chart matches" : needle || chosen ? `${visible} of ${charts.size} charts` : "";
    toolbar.hidden = !charts.size;
    renderPicker();
  }

  const resize = (c) => S.resizeChart(c.div);  // not displayed: resized when it is

  // -- full screen: one chart over the page (Esc or the button again closes it) ----------------
  function setFull(name) {
    view.full = charts.has(name) ? name : "";
    S.showFull(charts, view.full);
    saveView();
  }
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && view.full) setFull(""); });

  // -- drawing ---------------------------------------------------------------------------
  function chartMeta(c) {
    const y = c.div.data && c.div.data[0] ? c.div.data[0].y : [];
    let last = y.length ? y[y.length - 1] : null;
    const summary = summaries.find((m) => m.name === c.name);
    if ((last === null || last === undefined) && !c.zoom && summary) last = summary.last;  // inf, -inf, nan: a gap in the line
    c.card.dataset.points = String(y.length);
    S.markOnce("runlab:first-chart");
    c.card.dataset.count = String(c.count);
    c.card.dataset.last = last === null || last === undefined ? "" : String(last);
    c.meta.textContent = `${c.count.toLocaleString()} points` + (c.downsampled ? ` (${y.length.toLocaleString()} drawn)` : "") +
      ` · last ${S.fmtValue(last)}`;
  }

  // the series, or with smoothing the series as logged (faint, traces[0]) and its moving average (traces[1])
  function tracesOf(c, st) {
    const { raw, main } = S.seriesTraces(c.s, { x: S.xValues(c.s, st.x, runStart()), colour: S.colour(c.index), name: runName(), smooth: st.smooth });
    return raw ? [raw, main] : [main];
  }

  // Charts are drawn one per turn, the highest on the page among those whose points have come first, with
  // a paint between: drawn all at once as their answers came, seven charts held the page's thread for
  // 120-190 ms before any of them showed.
  const drawQueue = [];  // {c, start}: a chart waiting for its turn (twice when two redraws wait)
  let drawing = false;
  function drawTurn(c) {
    return new Promise((start) => {
      drawQueue.push({ c, start });
      if (!drawing) { drawing = true; setTimeout(nextTurn, 0); }  // the charts ready at once all in the queue first
    });
  }
  function nextTurn() {
    if (!drawQueue.length) { drawing = false; return; }
    // shown charts first, in page order (a chart's group decides its place, not when it was logged)
    const before = (a, b) => (a.card.hidden !== b.card.hidden ? !a.card.hidden
      : !!(a.card.compareDocumentPosition(b.card) & Node.DOCUMENT_POSITION_FOLLOWING));
    let best = 0;
    drawQueue.forEach((w, i) => { if (before(w.c, drawQueue[best].c)) best = i; });
    drawQueue.splice(best, 1)[0].start();
  }
  const turnDone = () => S.afterPaint().then(nextTurn);

  async function render(c) {
    if (!c.s) return;
    await S.plotly();
    await drawTurn(c);
    try { await draw(c); } finally { turnDone(); }
  }

  async function draw(c) {
    const st = settingsOf(c);
    const layout = S.chartAxes(S.plotLayout(), st, [c.s.values]);
    if (c.zoom) {
      layout.xaxis = Object.assign(layout.xaxis, { range: [c.zoom.lo, c.zoom.hi], autorange: false });
      if (c.yzoom) layout.yaxis = Object.assign(layout.yaxis, { range: c.yzoom, autorange: false });
    }
    // a user's zoom of a chart that is not downsampled survives live redraws, until a setting changes
    layout.uirevision = [st.x, st.log, st.clip, c.zoom ? `${c.zoom.lo},${c.zoom.hi}` : ""].join("|");
    await Plotly.react(c.div, tracesOf(c, st), layout, S.plotConfig);
    const card = c.card.dataset;
    card.smooth = String(st.smooth); card.log = st.log ? "1" : "0"; card.x = st.x; card.clip = st.clip ? "1" : "0";
  }

  const seriesOf = (c, params) => api(`${base}/metrics/${encodeURIComponent(c.name)}`, Object.assign({ points: MAX_POINTS }, params));
  // the first series of each chart, asked for before the page is first painted (see start)
  const prefetched = new Map();
  const prefetch = (list) => list.filter(chartable).forEach((m) => prefetched.set(m.name, seriesOf(m, {})));
  function wholeSeries(c) {
    const ask = prefetched.get(c.name);
    prefetched.delete(c.name);
    return ask || seriesOf(c, {});
  }
  const slim = (s) => ({ steps: s.steps, values: s.values, times: s.times });

  async function drawFull(c) {
    const s = await wholeSeries(c);
    c.count = s.count; c.downsampled = s.downsampled; c.zoom = null; c.yzoom = null; c.s = slim(s);
    await render(c);
    delete c.card.dataset.zoom;
    chartMeta(c);
    if (!c.hooked) { c.hooked = true; c.div.on("plotly_relayout", (ev) => onRelayout(c, ev)); }
  }

  // A zoom into a downsampled series asks the server for the visible range (steps, or times on a
  // time axis) at full resolution (up to the point budget); a double-click goes back to the whole series.
  function onRelayout(c, ev) {
    let lo = ev["xaxis.range[0]"], hi = ev["xaxis.range[1]"];
    if (Array.isArray(ev["xaxis.range"])) [lo, hi] = ev["xaxis.range"];
    if (lo !== undefined && hi !== undefined) {
      if (c.zoom && c.zoom.lo === lo && c.zoom.hi === hi) return;  // our own redraw
      const ylo = ev["yaxis.range[0]"], yhi = ev["yaxis.range[1]"];
      if (c.downsampled || c.zoom) {
        c.yzoom = ylo !== undefined && yhi !== undefined ? [ylo, yhi] : null;
        zoomTo(c, lo, hi).catch((err) => (c.meta.textContent = err.message));
      }
    } else if (ev["xaxis.autorange"] && c.zoom) {
      c.zoom = null;
      drawFull(c).catch((err) => (c.meta.textContent = err.message));
    }
  }

  function windowOf(st, lo, hi) {
    if (st.x === "wall") return { min_time: S.fromPlotDate(lo), max_time: S.fromPlotDate(hi) };
    if (st.x === "relative") return { min_time: runStart() + Number(lo), max_time: runStart() + Number(hi) };
    return { min_step: Math.floor(lo), max_step: Math.ceil(hi) };
  }

  async function zoomTo(c, lo, hi) {
    const st = settingsOf(c);
    c.zoom = { lo, hi };
    const token = (c.zoomToken = (c.zoomToken || 0) + 1);
    const s = await seriesOf(c, windowOf(st, lo, hi));
    if (token !== c.zoomToken || !c.zoom) return;
    c.s = slim(s);
    await render(c);
    c.card.dataset.zoom = `${lo},${hi}`;
    chartMeta(c);
  }

  async function extend(c) {
    const s = await seriesOf(c, { start: c.count });
    if (s.steps.length) {
      c.s = { steps: c.s.steps.concat(s.steps), values: c.s.values.concat(s.values), times: c.s.times.concat(s.times) };
      await render(c);
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

  // a chart's own controls: the page's settings for this chart only
  function syncControls(c) {
    c.controls.sync(settingsOf(c));
    c.card.classList.toggle("own-settings", !!view.per[c.name]);
  }

  function chartFor(m) {
    let c = charts.get(m.name);
    if (c) return c;
    const meta = el("span", { class: "meta" }, "");
    const hideButton = el("button", { type: "button", class: "icon-button c-hide", title: "Hide this chart", "aria-label": `Hide ${m.name}` }, "×");
    const parts = S.chartCard({ name: m.name, div: el("div", { class: "chart" }), meta, extra: hideButton,
      onChange: (key, value) => setChartSetting(c, key, value), onFull: () => setFull(view.full === m.name ? "" : m.name) });
    groupFor(m.name).grid.append(parts.card);
    c = { name: m.name, div: parts.div, card: parts.card, meta, controls: parts.controls, fullButton: parts.fullButton, count: 0,
      drawn: false, downsampled: false, busy: false, again: false, index: charts.size, s: null, zoom: null };
    charts.set(m.name, c);
    hideButton.addEventListener("click", () => choose(shownNames().filter((n) => n !== c.name)));
    syncControls(c);
    if (view.per[c.name]) parts.showControls(true);
    if (view.full === c.name) setFull(c.name);
    applyFilter();
    return c;
  }
  S.onThemeChange(() => charts.forEach((c) => render(c).catch(() => {})));

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
        otherCache.set(key, otherSeries(m).catch((err) => ({ error: err })));
      }
      const s = await otherCache.get(key);
      parts.push(el("div", { class: "panel card", dataset: { metric: m.name } }, el("h2", {}, `${m.name} `, el("span", { class: "faint" }, m.kind)), renderOther(m, s)));
    }
    box.replaceChildren(el("div", { class: "cards" }, parts));
    if (box.querySelector(".eval-chart")) await S.plotly();
    window.StudioEval?.drawPending(box);
  }

  // evaluation.js is deferred: it has run once the document is parsed
  const scriptsRun = new Promise((resolve) => (document.readyState === "loading"
    ? document.addEventListener("DOMContentLoaded", resolve, { once: true }) : resolve()));
  async function otherSeries(m) {
    const s = await seriesOf(m, { points: 1000 });
    await scriptsRun;
    return s;
  }

  function renderOther(m, s) {
    if (s.error) return S.errorNotice(s.error);
    if (window.StudioEval?.KINDS.includes(m.kind) && s.values.length) return window.StudioEval.element(m, s);
    if (m.kind === "image") {
      return el("div", { class: "images" }, s.values.slice(-12).map((name) => {
        const src = `${base}/files/${name.split("/").map(encodeURIComponent).join("/")}`;
        return el("figure", {},
          el("a", { href: src, target: "_blank", onclick: (e) => { if (e.ctrlKey || e.metaKey || e.shiftKey) return; e.preventDefault(); showImage(src, name); } },
            el("img", { src, alt: name, loading: "lazy" })),
          el("figcaption", {}, name));
      }));
    }
    if (m.kind === "row") return rowTable(m, s);
    const last = s.values[s.values.length - 1];
    return el("pre", { class: "code" }, JSON.stringify(last, null, 1));
  }

  // an image at full size over the page (Esc, a click, or the button closes it)
  function showImage(src, name) {
    const close = () => { box.remove(); document.removeEventListener("keydown", onKey); };
    const onKey = (e) => { if (e.key === "Escape") close(); };
    const box = el("div", { class: "image-view", role: "dialog", "aria-label": name, onclick: (e) => { if (e.target === box) close(); } },
      el("div", { class: "image-view-bar" }, el("span", { class: "mono" }, name), el("span", { class: "spacer" }),
        el("a", { class: "button small", href: src, target: "_blank" }, "Open"), el("button", { type: "button", class: "button small", onclick: close }, "Close")),
      el("img", { src, alt: name }));
    document.addEventListener("keydown", onKey);
    document.body.append(box);
  }

  // a logged table (run.log_row / log_table): every row, a page at a time, and a CSV of all of them
  const TABLE_PAGE = 100;
  function rowTable(m, s) {
    const table = {};
    s.values.forEach((part) => Object.entries(part || {}).forEach(([k, v]) => (table[k] = (table[k] || []).concat(v))));
    const cols = Object.keys(table), n = Math.max(0, ...cols.map((k) => table[k].length));
    const wrap = el("div", { class: "row-table", dataset: { rows: String(n) } });
    const body = el("tbody");
    const info = el("span", { class: "faint page-info" });
    const prev = el("button", { type: "button", class: "button small page-prev" }, "Previous");
    const next = el("button", { type: "button", class: "button small page-next" }, "Next");
    let pageNo = 0;
    const pages = Math.max(1, Math.ceil(n / TABLE_PAGE));
    function show() {
      const from = pageNo * TABLE_PAGE, to = Math.min(n, from + TABLE_PAGE);
      body.replaceChildren(...Array.from({ length: to - from }, (_, j) => el("tr", {}, cols.map((k) => el("td", {}, S.fmtValue(table[k][from + j]))))));
      info.textContent = n ? `rows ${from + 1}–${to} of ${n.toLocaleString()}` : "no rows";
      prev.disabled = pageNo === 0; next.disabled = pageNo >= pages - 1;
      wrap.dataset.page = String(pageNo);
    }
    prev.addEventListener("click", () => { pageNo = Math.max(0, pageNo - 1); show(); });
    next.addEventListener("click", () => { pageNo = Math.min(pages - 1, pageNo + 1); show(); });
    const cell = (v) => { const t = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v); return /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t; };
    const download = el("button", { type: "button", class: "button small table-csv" }, "Download CSV");
    download.addEventListener("click", () => {
      const lines = [cols.map(cell).join(","), ...Array.from({ length: n }, (_, i) => cols.map((k) => cell(table[k][i])).join(","))];
      const url = URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" }));
      const a = el("a", { href: url, download: `${m.name.replace(/[^\w.-]+/g, "_")}.csv` });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    });
    wrap.append(el("div", { class: "table-wrap" }, el("table", { class: "grid" }, el("thead", {}, el("tr", {}, cols.map((k) => el("th", {}, k)))), body)),
      el("div", { class: "table-pager" }, prev, info, next, el("span", { class: "spacer" }), download));
    show();
    return wrap;
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

  // The run's files as a tree of folders (collapsible; each can be downloaded as a zip), with a
  // preview of text, JSON, CSV and images (the first 256 KB of a file; names and contents are text).
  const PREVIEW_BYTES = 262144;
  const IMAGE = /\.(png|jpe?g|gif|webp|bmp|svg)$/i, CSV = /\.(csv|tsv)$/i, JSON_FILE = /\.(json|ipynb)$/i;
  const TEXT = /\.(txt|log|out|err|py|ya?ml|toml|cfg|ini|md|sh|jsonl|r|sql|rst|env)$/i;
  const previewable = (name) => IMAGE.test(name) || CSV.test(name) || JSON_FILE.test(name) || TEXT.test(name)
    || name.startsWith("azureml-logs/") || name.startsWith("logs/");

  function fileTree(files) {
    const root = { folders: new Map(), files: [], size: 0, count: 0 };
    for (const f of files) {
      const parts = f.name.split("/");
      let node = root;
      node.size += f.size; node.count += 1;
      for (const part of parts.slice(0, -1)) {
        if (!node.folders.has(part)) node.folders.set(part, { folders: new Map(), files: [], size: 0, count: 0 });
        node = node.folders.get(part);
        node.size += f.size; node.count += 1;
      }
      node.files.push({ ...f, base: parts[parts.length - 1] });
    }
    return root;
  }

  function renderFolder(node, path, depth) {
    const items = [];
    for (const [name, child] of [...node.folders].sort((a, b) => a[0].localeCompare(b[0]))) {
      const full = path ? `${path}/${name}` : name;
      const zip = el("a", { class: "button small", href: `${base}/zip?folder=${encodeURIComponent(full)}`,
        title: `download ${full}/ as a zip`, download: "" }, "zip");
      zip.addEventListener("click", (e) => e.stopPropagation());
      const details = el("details", { class: "folder", dataset: { folder: full }, open: depth < 1 || null },
        el("summary", {}, el("span", { class: "folder-name" }, `${name}/`),
          el("span", { class: "faint" }, ` ${child.count} file${child.count === 1 ? "" : "s"}, ${S.fmtBytes(child.size)} `), zip),
        renderFolder(child, full, depth + 1));
      items.push(el("li", {}, details));
    }
    for (const f of node.files.sort((a, b) => a.base.localeCompare(b.base))) {
      const actions = [];
      if (previewable(f.name)) {
        const button = el("button", { type: "button", class: "button small preview-button" }, "Preview");
        button.addEventListener("click", () => preview(f));
        actions.push(button);
      }
      actions.push(el("a", { class: "button small", href: `${fileUrl("files", f.name)}?download=true` }, "Download"));
      items.push(el("li", { class: "file", dataset: { name: f.name } },
        el("a", { href: fileUrl("files", f.name), target: "_blank", rel: "noopener" }, f.base),
        el("span", { class: "faint" }, ` ${S.fmtBytes(f.size)} `), ...actions));
    }
    return el("ul", { class: "file-tree" }, items);
  }

  function csvRows(text, sep) {  // the first 100 rows; quoted fields with the separator, quotes or line ends
    const rows = [];
    let row = [], field = "", quoted = false;
    for (let i = 0; i < text.length && rows.length < 100; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
        else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"' && field === "") quoted = true;
      else if (c === sep) { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field); rows.push(row); row = []; field = "";
      } else field += c;
    }
    if ((field || row.length) && rows.length < 100) { row.push(field); rows.push(row); }
    return rows;
  }

  async function preview(f) {
    const panel = document.getElementById("file-preview");
    panel.hidden = false;
    const head = el("div", { class: "toolbar" }, el("b", {}, f.name), el("span", { class: "faint" }, S.fmtBytes(f.size)));
    const close = el("button", { type: "button", class: "button small", id: "file-preview-close" }, "Close");
    close.addEventListener("click", () => { panel.hidden = true; panel.replaceChildren(); });
    head.append(close);
    if (IMAGE.test(f.name)) {
      panel.replaceChildren(head, el("img", { class: "file-preview-image", src: fileUrl("files", f.name), alt: f.name }));
      return;
    }
    panel.replaceChildren(head, el("p", { class: "faint" }, "Loading…"));
    let text;
    try {
      const response = await fetch(`${fileUrl("files", f.name)}?max_bytes=${PREVIEW_BYTES}`);
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      text = new TextDecoder("utf-8", { fatal: false }).decode(await response.arrayBuffer());
    } catch (err) { panel.replaceChildren(head, S.errorNotice(err)); return; }
    const cut = f.size > PREVIEW_BYTES ? el("p", { class: "faint" }, `the first ${S.fmtBytes(PREVIEW_BYTES)} of ${S.fmtBytes(f.size)}: download the file for all of it`) : null;
    if (CSV.test(f.name)) {
      const rows = csvRows(text, /\.tsv$/i.test(f.name) ? "\t" : ",");
      const [header, ...body] = rows;
      panel.replaceChildren(head, el("div", { class: "table-wrap" }, el("table", { class: "grid csv-preview" },
        el("thead", {}, el("tr", {}, (header || []).map((h) => el("th", {}, h)))),
        el("tbody", {}, body.map((r) => el("tr", {}, r.map((v) => el("td", {}, v))))))), cut);
      return;
    }
    if (JSON_FILE.test(f.name) && f.size <= PREVIEW_BYTES) {
      try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON after all: shown as text */ }
    }
    panel.replaceChildren(head, el("pre", { class: "file-preview-text" }, text), cut);
  }

  async function loadFiles() {
    const box = document.getElementById("files");
    try {
      const files = await api(`${base}/files`);
      if (!files.length) {
        box.replaceChildren(S.emptyState("No files yet",
          "A submitted run's ./outputs and ./logs are uploaded when it ends. Upload files from any run with:",
          "run.upload_file('outputs/model.pkl', 'model.pkl')"));
        return;
      }
      const all = el("a", { class: "button small", href: `${base}/zip`, download: "", id: "files-zip" }, "Download all (zip)");
      box.replaceChildren(el("div", { class: "toolbar" }, el("span", {}, `${files.length} files, ${S.fmtBytes(files.reduce((n, f) => n + f.size, 0))}`), all),
        el("div", { id: "files-tree" }, renderFolder(fileTree(files), "", 0)),
        el("section", { id: "file-preview", class: "panel file-preview", hidden: true }));
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
    if (fresh.status !== run.status || fresh.started_at !== run.started_at || fresh.ended_at !== run.ended_at) setRun(fresh);
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
    rejectReady(err);
    document.getElementById("main").replaceChildren(S.errorNotice(err));
    return;
  }
  resolveReady(run);
  performance.mark("runlab:overview");  // the overview filled: read by benchmarks/bench_studio.py (user timing)
  showTab(location.hash.slice(1) || "overview");
  // The charts' series are asked for now (the page carries the metric list), the overview is painted,
  // and the chart library runs (Studio.plotly waits for a paint) while they come; the chart cards are
  // built meanwhile
  try {
    const initial = S.pageData.metrics;
    if (initial) prefetch(initial);
    S.plotly().catch(() => {});
    await S.afterPaint();
    await applyMetrics(initial || await api(`${base}/metrics`));
  } catch (err) { document.getElementById("charts").replaceChildren(S.errorNotice(err)); }
  live.counts = summaries.map((m) => `${m.name}:${m.count}`).join("|");
  scheduleLive();
  document.body.dataset.ready = "1";
})();
