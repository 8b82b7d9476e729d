/* Compare runs: overlay one metric's curves (and more metrics, a chart each), with the run page's
   chart settings for every chart and per chart, full screen, and the view in the URL; parallel
   coordinates and a scatter for many runs; a table of parameters and final metrics. */
"use strict";
(async function () {
  const S = window.Studio;
  const { api, el } = S;
  const q = new URLSearchParams(location.search);
  let ids = [...(q.get("runs") || "").split(","), ...q.getAll("run")].map((s) => s.trim()).filter(Boolean);
  ids = [...new Set(ids)];
  const wanted = q.getAll("metric").flatMap((m) => m.split(",")).map((m) => m.trim()).filter(Boolean);
  let metric = wanted[0] || "";
  let extras = wanted.slice(1);  // more metrics, each its own chart below the first
  let colourBy = q.get("colour") || "run";  // run, tag:KEY or prop:KEY
  // parallel coordinates draw with WebGL (seconds where the GPU is off): drawn when asked for (pc=1)
  let showParcoords = q.get("pc") === "1";
  // smoothing, log, x axis, clipping for every chart and per chart (charts={"acc":{"log":true}}),
  // full=METRIC: as the run page (Studio.readChartView)
  const view = S.readChartView(q);
  let data = null;
  let seriesCache = new Map();  // metric -> its series of the runs compared (a setting redraws from here)

  const select = document.getElementById("metric-select");
  const chart = document.getElementById("compare-chart");
  // the charts' cards: the first chart's (`main`, its metric the one chosen) and one per more metric
  const slot = document.createComment("the first chart");
  chart.replaceWith(slot);
  const main = S.chartCard({ name: metric || "metric", div: chart, attrs: { class: "chart-card compare-card", id: "compare-main" },
    onChange: (key, value) => setOwn(metric, key, value), onFull: () => setFull(view.full === metric ? "" : metric) });
  slot.replaceWith(main.card);
  const extraCards = new Map();  // metric -> card
  const shownCards = () => [...(metric ? [[metric, main]] : []), ...extraCards];
  function retitle(c, name) {  // the first chart shows another metric
    c.title.textContent = name; c.title.title = name; c.card.dataset.metric = name;
    c.settingsButton.setAttribute("aria-label", `Settings of ${name}`);
    c.fullButton.setAttribute("aria-label", `Full screen ${name}`);
  }
  const table = document.getElementById("compare-table");
  const onlyDiff = document.getElementById("only-diff");
  const body = document.getElementById("compare-body");

  const runName = (r) => r.display_name || r.run_id;
  const runById = () => Object.fromEntries((data ? data.runs : []).map((r) => [r.run_id, r]));

  // colour by run (a palette that does not repeat), or by the value of a tag or property (runs that
  // share it share a colour and a legend group)
  function groupValue(r) {
    if (colourBy.startsWith("tag:")) { const v = (r.tags || {})[colourBy.slice(4)]; return v === undefined ? "(no tag)" : v === "" ? "(no value)" : v; }
    if (colourBy.startsWith("prop:")) { const v = (r.properties || {})[colourBy.slice(5)]; return v === undefined ? "(none)" : String(v); }
    return null;
  }
  function groupValues() {
    const values = [];
    for (const id of ids) { const r = runById()[id]; const v = r ? groupValue(r) : null; if (v !== null && !values.includes(v)) values.push(v); }
    return values;
  }
  function colourOf(runId) {
    if (colourBy === "run") return S.colour(ids.indexOf(runId));
    const r = runById()[runId];
    return S.colour(Math.max(0, groupValues().indexOf(r ? groupValue(r) : null)));
  }

  function saveQuery() {
    S.setQuery({ runs: ids.join(","), metric: metric ? [metric, ...extras.filter((m) => m !== metric)] : [], colour: colourBy === "run" ? "" : colourBy,
      pc: showParcoords, ...S.chartViewQuery(view) });
  }

  function chartableNames() {
    const names = new Map();
    for (const list of Object.values(data.metrics)) {
      for (const m of list) {
        if (S.isNumericSummary(m)) {
          names.set(m.name, Math.max(names.get(m.name) || 0, m.count));
        }
      }
    }
    return [...names.entries()].filter(([, n]) => n >= 1).map(([name]) => name);
  }

  // one metric of every run in one chart: traces with smoothing are the raw line (faint, not in the
  // legend) and the moving average; `meta` is the run id of a run's main trace
  function seriesOf(name) {
    if (!seriesCache.has(name)) {
      const points = Math.max(200, Math.min(2000, Math.floor(60000 / ids.length)));
      const pending = api("/api/series", { name, run: ids, points });
      pending.catch(() => seriesCache.delete(name));  // asked again on the next draw
      seriesCache.set(name, pending);
    }
    return seriesCache.get(name);
  }
  async function drawMetric(div, name) {
    const set = await seriesOf(name);
    const st = S.chartSettings(view, name);
    const byId = runById();
    const grouped = colourBy !== "run";
    const raws = [], mains = [], runs = [], base = [];
    for (const s of set.series) {
      const r = byId[s.run_id] || { run_id: s.run_id };
      const group = grouped ? groupValue(r) : undefined;
      const { raw, main } = S.seriesTraces(s, { x: S.xValues(s, st.x, r.started_at || r.created_at), colour: colourOf(s.run_id),
        name: S.plotText(runName(r)), label: S.plotText(name), smooth: st.smooth, meta: s.run_id });
      if (grouped) Object.assign(main, { legendgroup: group, legendgrouptitle: { text: S.plotText(group) } });
      if (raw) raws.push(Object.assign(raw, { legendgroup: grouped ? group : s.run_id }));
      mains.push(main);
    }
    if (grouped) {  // a group's runs together in the legend
      const order = groupValues();
      mains.sort((a, b) => order.indexOf(a.legendgroup) - order.indexOf(b.legendgroup));
    }
    const traces = [...raws, ...mains];
    traces.forEach((t) => { runs.push(t.meta || null); base.push(t.opacity === undefined ? 1 : t.opacity); });
    raws.forEach((t, i) => (runs[i] = set.series[i].run_id));
    const many = set.series.length > 8;
    const layout = S.plotLayout({ showlegend: true, hovermode: "closest",
      legend: Object.assign(many ? { orientation: "v", x: 1.02, y: 1, xanchor: "left" } : { orientation: "h", y: -0.22 },
        { font: { color: S.chartTheme().text }, groupclick: "toggleitem" }),
      margin: { l: 56, r: 16, t: 8, b: 40 }, yaxis: { title: { text: S.plotText(name) }, gridcolor: S.chartTheme().grid, zeroline: false, automargin: true } });
    S.chartAxes(layout, st, set.series.map((s) => s.values));
    layout.uirevision = [st.x, st.log, st.clip].join("|");  // a zoom stays while smoothing changes, not across axes
    await Plotly.react(div, traces, layout, S.plotConfig);
    div.runOf = runs; div.baseOpacity = base;
    delete div.dataset.highlight;
    hookHighlight(div);
    div.dataset.traces = String(mains.length);
    const card = div.closest(".chart-card")?.dataset;
    if (card) { card.smooth = String(st.smooth); card.log = st.log ? "1" : "0"; card.x = st.x; card.clip = st.clip ? "1" : "0"; }
    return set;
  }

  // hover a run in a legend (or its curve, or its column in the table) to pick it out of the others
  function highlight(runId) {
    const charts = [chart, ...document.querySelectorAll(".compare-extra .chart")];
    for (const div of charts) {
      if (!div.runOf || !div.data) continue;
      if ((div.dataset.highlight || "") === (runId || "")) continue;
      const opacity = div.runOf.map((r, i) => (!runId || r === runId ? div.baseOpacity[i] : 0.15 * div.baseOpacity[i]));
      if (runId) div.dataset.highlight = runId; else delete div.dataset.highlight;
      Plotly.restyle(div, { opacity }).catch(() => {});
    }
    document.querySelectorAll("#compare-table th.run-col").forEach((th) => th.classList.toggle("highlight", th.dataset.runId === runId));
  }
  function hookHighlight(div) {
    const bind = () => div.querySelectorAll(".legend .traces").forEach((g) => {
      if (g.dataset.hooked) return;
      g.dataset.hooked = "1";
      g.addEventListener("mouseenter", () => { const t = g.__data__?.[0]?.trace; if (t?.meta) highlight(t.meta); });
      g.addEventListener("mouseleave", () => highlight(null));
    });
    bind();
    if (div.hooked) return;
    div.hooked = true;
    div.on("plotly_afterplot", bind);
    div.on("plotly_hover", (ev) => { const r = div.runOf?.[ev.points?.[0]?.curveNumber]; if (r) highlight(r); });
    div.on("plotly_unhover", () => highlight(null));
  }

  async function drawChart() {
    const note = document.getElementById("chart-note");
    main.card.querySelector(".chart-head").hidden = main.settingsButton.hidden = !metric;
    if (!metric) {
      Plotly.purge(chart);
      main.showControls(false);
      chart.replaceChildren(S.emptyState("No numeric metrics", "These runs have no numeric metric to chart."));
      drawExtras().catch(() => {});
      return;
    }
    chart.replaceChildren();
    retitle(main, metric);
    syncCard(metric, main);
    const set = await drawMetric(chart, metric);
    const drawn = set.series.reduce((n, s) => n + s.steps.length, 0);
    note.textContent = `${set.series.length} run${set.series.length === 1 ? "" : "s"}, ${drawn.toLocaleString()} points drawn` +
      (set.missing.length ? ` · ${set.missing.length} without ${metric}` : "");
    await drawExtras();
    setFull(view.full, false);  // a link's full-screen chart, once it is there
    manySoon();
  }

  // -- settings: the page's (every chart) and one chart's; full screen -------------------------
  function syncCard(name, c) {
    c.controls.sync(S.chartSettings(view, name));
    c.card.classList.toggle("own-settings", !!view.per[name]);
    if (view.per[name] && c.box.hidden) c.showControls(true);
  }
  // a setting redraws the charts from the series already read (no request)
  const redrawAll = () => Promise.all(shownCards().map(([name, c]) => drawMetric(c.div, name)));
  function setPage(key, value) {
    S.setPageSetting(view, key, value);
    pageControls.sync(view);
    shownCards().forEach(([name, c]) => syncCard(name, c));
    redraw(redrawAll);
  }
  function setOwn(name, key, value) {
    if (!name) return;
    S.setOwnSetting(view, name, key, value);
    const c = name === metric ? main : extraCards.get(name);
    if (!c) return;
    syncCard(name, c);
    redraw(() => drawMetric(c.div, name));
  }
  function setFull(name, save = true) {
    view.full = shownCards().some(([n]) => n === name) ? name : "";
    S.showFull(shownCards(), view.full);
    if (save) saveQuery();
  }
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && view.full) setFull(""); });

  // the many-runs panel is drawn when it scrolls into view (parallel coordinates draw with WebGL:
  // not on the way to the first chart)
  const manyPanel = document.getElementById("many-panel");
  let manyObserver = null;
  function manySoon() {
    if (!data || ids.length < 3) { manyPanel.hidden = true; return; }
    manyPanel.hidden = false;
    if (!("IntersectionObserver" in window)) { drawMany(); return; }
    manyObserver?.disconnect();
    manyObserver = new IntersectionObserver((entries) => {
      if (!entries.some((e) => e.isIntersecting)) return;
      manyObserver.disconnect();
      try { drawMany(); } catch (err) { manyPanel.append(S.errorNotice(err)); }
    });
    manyObserver.observe(manyPanel);
  }

  // the other metrics chosen: a chart each
  async function drawExtras() {
    const box = document.getElementById("compare-extras");
    const names = extras.filter((m) => m !== metric && chartableNames().includes(m));
    for (const [name, c] of [...extraCards]) {
      if (names.includes(name)) continue;
      Plotly.purge(c.div); c.card.remove(); extraCards.delete(name);
      if (view.full === name) setFull("");
    }
    await Promise.all(names.map((name) => {
      let c = extraCards.get(name);
      if (!c) {
        c = S.chartCard({ name, div: el("div", { class: "chart" }), attrs: { class: "chart-card compare-card compare-extra" },
          onChange: (key, value) => setOwn(name, key, value), onFull: () => setFull(view.full === name ? "" : name) });
        extraCards.set(name, c);
        box.append(c.card);
      }
      syncCard(name, c);
      return drawMetric(c.div, name).catch((err) => c.div.replaceChildren(S.errorNotice(err)));
    }));
  }

  // -- many runs: parallel coordinates of properties against a metric, a scatter of any two columns --
  function columns() {
    const runs = data.runs, cols = [];
    const keys = (field) => [...new Set(runs.flatMap((r) => Object.keys(r[field] || {})))].sort();
    for (const k of keys("properties")) cols.push({ id: `prop:${k}`, label: k, get: (r) => r.properties?.[k] });
    for (const k of keys("tags")) cols.push({ id: `tag:${k}`, label: `${k} (tag)`, get: (r) => r.tags?.[k] });
    for (const name of chartableNames()) {
      cols.push({ id: `metric:${name}`, label: name, metric: true, get: (r) => {
        const m = (data.metrics[r.run_id] || []).find((x) => x.name === name);
        return m && typeof m.last === "number" ? m.last : undefined;
      } });
    }
    cols.push({ id: "duration", label: "duration (s)", get: (r) => r.duration_s ?? undefined });
    return cols;
  }
  const asNumber = (v) => (typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : null);
  // a column's values as numbers: numeric ones as they are, others as the index of their (sorted) value
  function numericColumn(col, runs) {
    const raw = runs.map((r) => col.get(r));
    const present = raw.filter((v) => v !== undefined && v !== null);
    if (present.every((v) => asNumber(v) !== null)) return { values: raw.map((v) => (v === undefined ? null : asNumber(v))), categories: null, distinct: new Set(present.map(String)).size };
    const cats = [...new Set(present.map(String))].sort();
    return { values: raw.map((v) => (v === undefined || v === null ? null : cats.indexOf(String(v)))), categories: cats, distinct: cats.length };
  }

  function drawMany() {
    const panel = document.getElementById("many-panel");
    if (!data || ids.length < 3) { panel.hidden = true; return; }
    panel.hidden = false;
    const runs = ids.map((id) => runById()[id]).filter(Boolean);
    const cols = columns();
    // parallel coordinates: each property or tag that differs between runs, and the chosen metric last
    const target = cols.find((c) => c.id === `metric:${metric}`);
    const dims = [];
    for (const col of cols.filter((c) => !c.metric && c.id !== "duration")) {
      const nc = numericColumn(col, runs);
      if (nc.distinct < 2 || dims.length >= 12) continue;
      dims.push(Object.assign({ label: S.plotText(col.label), values: nc.values.map((v) => (v === null ? NaN : v)) },
        nc.categories ? { tickvals: nc.categories.map((_, i) => i), ticktext: nc.categories.map(S.plotText) } : {}));
    }
    const par = document.getElementById("parcoords");
    const toggle = document.getElementById("parcoords-toggle");
    toggle.hidden = !(target && dims.length);
    toggle.textContent = showParcoords ? "Hide" : `Show for ${runs.length} runs`;
    toggle.setAttribute("aria-pressed", String(showParcoords));
    par.hidden = !showParcoords;
    if (!showParcoords) {
      Plotly.purge(par);
      document.getElementById("parcoords-note").textContent = target && dims.length ? `${dims.length} properties and tags against ${target.label}` : "";
    } else if (target && dims.length) {
      const y = numericColumn(target, runs).values.map((v) => (v === null ? NaN : v));
      dims.push({ label: S.plotText(target.label), values: y });
      const t = S.chartTheme();
      Plotly.react(par, [{ type: "parcoords", dimensions: dims, labelfont: { color: t.text }, tickfont: { color: t.text },
        line: { color: y, colorscale: "Viridis", showscale: true, colorbar: { title: { text: S.plotText(target.label) } } } }],
        S.plotLayout({ margin: { l: 60, r: 60, t: 40, b: 20 } }), S.plotConfig);
      document.getElementById("parcoords-note").textContent = "";
    } else {
      Plotly.purge(par);
      document.getElementById("parcoords-note").textContent = target ? "No property or tag differs between these runs." : "";
    }
    // the scatter: any two columns
    const xs = document.getElementById("scatter-x"), ys = document.getElementById("scatter-y");
    const pick = (select, fallback) => {
      const keep = select.value;
      select.replaceChildren(...cols.map((c) => el("option", { value: c.id }, c.label)));
      select.value = cols.some((c) => c.id === keep) ? keep : fallback;
    };
    pick(xs, (cols.find((c) => c.id.startsWith("prop:")) || cols[0]).id);
    pick(ys, target ? target.id : cols[cols.length - 1].id);
    drawScatter();
  }
  function drawScatter() {
    const runs = ids.map((id) => runById()[id]).filter(Boolean);
    const cols = columns();
    const cx = cols.find((c) => c.id === document.getElementById("scatter-x").value), cy = cols.find((c) => c.id === document.getElementById("scatter-y").value);
    const div = document.getElementById("scatter");
    if (!cx || !cy) { Plotly.purge(div); return; }
    const val = (col, r) => { const v = col.get(r); const n = asNumber(v); return n !== null ? n : v === undefined ? null : S.plotText(v); };
    Plotly.react(div, [{ type: "scatter", mode: "markers", x: runs.map((r) => val(cx, r)), y: runs.map((r) => val(cy, r)),
      text: runs.map((r) => S.plotText(runName(r))), meta: runs.map((r) => r.run_id),
      marker: { size: 9, color: runs.map((r) => colourOf(r.run_id)), line: { width: 1, color: S.chartTheme().bg } },
      hovertemplate: `%{text}<br>${S.plotText(cx.label)} %{x}<br>${S.plotText(cy.label)} %{y}<extra></extra>` }],
    S.plotLayout({ xaxis: { title: { text: S.plotText(cx.label) }, gridcolor: S.chartTheme().grid, zeroline: false },
      yaxis: { title: { text: S.plotText(cy.label) }, gridcolor: S.chartTheme().grid, zeroline: false, automargin: true } }), S.plotConfig);
  }

  const NO_VALUE = "\u0000no value";  // a tag's "" in the table, told apart from a missing tag

  function renderTable() {
    const runs = data.runs;
    const fmt = (v) => (v === undefined ? "" : typeof v === "object" && v !== null ? JSON.stringify(v) : S.fmtValue(v));
    const rows = [];
    const section = (title) => rows.push({ section: title });
    const row = (label, values, cls) => rows.push({ label, values: values.map(fmt), cls });
    section("Run");
    row("Status", runs.map((r) => r.status), "status");
    row("Experiment", runs.map((r) => r.experiment));
    row("Created", runs.map((r) => S.fmtTimeZone(r.created_at)));
    row("Duration", runs.map((r) => S.fmtDuration(r.duration_s)));
    row("Compute target", runs.map((r) => r.target));
    const keys = (field) => [...new Set(runs.flatMap((r) => Object.keys(r[field] || {})))].sort();
    if (runs.some((r) => r.arguments.length)) { section("Arguments"); row("arguments", runs.map((r) => r.arguments.join(" "))); }
    const tagKeys = keys("tags");
    // a tag set without a value is set: shown with a marker, unlike a run without the tag (blank)
    if (tagKeys.length) { section("Tags"); tagKeys.forEach((k) => row(k, runs.map((r) => (r.tags[k] === "" ? NO_VALUE : r.tags[k])), "tag")); }
    const propKeys = keys("properties");
    if (propKeys.length) { section("Properties"); propKeys.forEach((k) => row(k, runs.map((r) => r.properties[k]))); }
    const metricNames = [...new Set(Object.values(data.metrics).flatMap((l) => l.map((m) => m.name)))];
    if (metricNames.length) {
      section("Final metrics");
      metricNames.forEach((name) => row(name, runs.map((r) => {
        const m = (data.metrics[r.run_id] || []).find((x) => x.name === name);
        return m ? (m.kind === "scalar" ? m.last : `(${m.kind})`) : undefined;
      }), "metric"));
    }
    const head = el("tr", {}, el("th", {}, ""), runs.map((r) => el("th", { class: "run-col", dataset: { runId: r.run_id },
      onmouseenter: () => highlight(r.run_id), onmouseleave: () => highlight(null) },
      el("span", { class: "swatch", style: `background:${colourOf(r.run_id)}` }),
      el("a", { href: `/runs/${encodeURIComponent(r.run_id)}` }, runName(r)),
      el("button", { class: "remove", type: "button", title: "remove from the comparison", onclick: () => removeRun(r.run_id) }, "×"))));
    const bodyRows = rows.map((r) => {
      if (r.section) return el("tr", { class: "section" }, el("td", { colspan: runs.length + 1 }, r.section));
      const differs = new Set(r.values).size > 1;
      if (onlyDiff.checked && !differs) return null;
      return el("tr", { dataset: { row: r.label } }, el("td", { class: "muted" }, r.label), r.values.map((v) =>
        el("td", { class: (differs ? "diff " : "") + (r.cls === "metric" ? "num" : "") }, r.cls === "status" && v ? S.statusBadge(v) : v === NO_VALUE ? S.tagValue("") : v)));
    });
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, bodyRows));
  }

  // ids of the URL that name no run: said once, the others compared
  function showMissing(missing) {
    document.getElementById("compare-missing")?.remove();
    if (!missing.length) return;
    body.prepend(el("div", { class: "notice", role: "status", id: "compare-missing" },
      `Not found, so not compared: ${missing.join(", ")}`));
  }

  function removeRun(runId) {
    ids = ids.filter((i) => i !== runId);
    load();
  }

  async function load() {
    document.body.dataset.ready = "0";
    saveQuery();
    if (!ids.length) {
      body.replaceChildren(el("div", { class: "panel" }, S.emptyState("Pick runs to compare",
        "Select runs in a runs table and press “Compare selected”, or add runs by name or id with the box above.")));
      document.body.dataset.ready = "1";
      return;
    }
    seriesCache = new Map();  // the runs compared changed
    try {
      data = await api("/api/compare", { run: ids });
    } catch (err) {
      showMissing([]);
      body.prepend(S.errorNotice(err));
      document.body.dataset.ready = "1";
      return;
    }
    showMissing(data.missing || []);
    ids = ids.filter((i) => !(data.missing || []).includes(i));
    document.getElementById("compare-subtitle").textContent = `${ids.length} run${ids.length === 1 ? "" : "s"}: overlay metric curves and see what differs.`;
    const names = chartableNames();
    if (!names.includes(metric)) metric = names.includes("loss") ? "loss" : names[0] || "";
    select.replaceChildren(...names.map((n) => { const o = el("option", { value: n }, n); if (n === metric) o.selected = true; return o; }));
    extras = extras.filter((m) => names.includes(m) && m !== metric);
    renderOptions(names);
    // the charts' series are asked for now, so that the server reads them while the table is drawn and
    // the chart library runs (before, they were asked for once plotly.js had run: 0.5-0.7 s later)
    [metric, ...extras].filter(Boolean).forEach((name) => seriesOf(name).catch(() => {}));
    renderTable();  // the table first: the chart library loads meanwhile
    try { await S.afterPaint(); await S.plotly(); await drawChart(); } catch (err) { chart.replaceChildren(S.errorNotice(err)); }
    saveQuery();
    document.body.dataset.ready = "1";
    S.markOnce("runlab:compare-drawn");
  }

  // the chart options: more metrics, colour by, x axis, smoothing, log
  const optionsBox = document.getElementById("compare-options");
  // the settings every chart takes (#compare-smooth, #compare-log, #compare-x, #compare-clip)
  const pageControls = S.settingControls({ ids: "compare", label: "every chart", onChange: (key, value) => setPage(key, value) });
  pageControls.sync(view);
  function renderOptions(names) {
    const picks = document.getElementById("metric-picks");
    picks.replaceChildren(...names.filter((n) => n !== metric).map((n) => el("label", { class: "check" },
      el("input", { type: "checkbox", value: n, checked: extras.includes(n), onchange: (e) => {
        extras = e.target.checked ? [...extras, n] : extras.filter((m) => m !== n);
        redraw(drawExtras);
      } }), n)));
    const keys = (field) => [...new Set(data.runs.flatMap((r) => Object.keys(r[field] || {})))].sort();
    const colourSelect = document.getElementById("colour-by");
    const choices = [["run", "run"], ...keys("tags").map((k) => [`tag:${k}`, `tag ${k}`]), ...keys("properties").map((k) => [`prop:${k}`, `property ${k}`])];
    if (!choices.some(([v]) => v === colourBy)) colourBy = "run";
    colourSelect.replaceChildren(...choices.map(([v, label]) => { const o = el("option", { value: v }, label); o.selected = v === colourBy; return o; }));
  }
  async function redraw(fn) {
    saveQuery();
    document.body.dataset.ready = "0";
    try { await (fn || drawChart)(); } catch (err) { chart.replaceChildren(S.errorNotice(err)); }
    document.body.dataset.ready = "1";
  }
  optionsBox.append(
    el("label", { class: "check" }, "Colour by", el("select", { class: "input small", id: "colour-by", onchange: (e) => { colourBy = e.target.value; renderTable(); redraw(); } })),
    ...pageControls.items);
  document.getElementById("parcoords-toggle").addEventListener("click", () => {
    showParcoords = !showParcoords;
    saveQuery();
    try { drawMany(); } catch (err) { manyPanel.append(S.errorNotice(err)); }
  });
  document.getElementById("scatter-x").addEventListener("change", drawScatter);
  document.getElementById("scatter-y").addEventListener("change", drawScatter);
  S.onThemeChange(() => redraw());

  select.addEventListener("change", async () => {
    metric = select.value;
    extras = extras.filter((m) => m !== metric);
    renderOptions(chartableNames());
    saveQuery();
    document.body.dataset.ready = "0";
    try { await drawChart(); } catch (err) { chart.replaceChildren(S.errorNotice(err)); }
    document.body.dataset.ready = "1";
  });
  onlyDiff.addEventListener("change", renderTable);

  const addInput = document.getElementById("add-run");
  const options = document.getElementById("add-run-options");
  addInput.addEventListener("input", S.debounce(async () => {
    const text = addInput.value.trim();
    if (!text) return;
    if (options.querySelector(`option[value="${CSS.escape(text)}"]`)) {
      if (!ids.includes(text)) { ids.push(text); addInput.value = ""; load(); }
      return;
    }
    try {
      const page = await api("/api/runs", { search: text, limit: 20, include_children: "true" });
      options.replaceChildren(...page.runs.map((r) => el("option", { value: r.run_id }, `${runName(r)} · ${r.experiment} · ${r.status}`)));
    } catch (err) { /* suggestions only */ }
  }, 200));

  await load();
})();
