/* Compare runs: overlay one metric's curves, and a table of parameters and final metrics. */
"use strict";
(async function () {
  const S = window.Studio;
  const { api, el } = S;
  const q = new URLSearchParams(location.search);
  let ids = [...(q.get("runs") || "").split(","), ...q.getAll("run")].map((s) => s.trim()).filter(Boolean);
  ids = [...new Set(ids)];
  let metric = q.get("metric") || "";
  let data = null;

  const select = document.getElementById("metric-select");
  const chart = document.getElementById("compare-chart");
  const table = document.getElementById("compare-table");
  const onlyDiff = document.getElementById("only-diff");
  const body = document.getElementById("compare-body");

  const runName = (r) => r.display_name || r.run_id;
  const colourOf = (runId) => S.colour(ids.indexOf(runId));

  function saveQuery() { S.setQuery({ runs: ids.join(","), metric }); }

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

  async function drawChart() {
    const note = document.getElementById("chart-note");
    if (!metric) {
      Plotly.purge(chart);
      chart.replaceChildren(S.emptyState("No numeric metrics", "These runs have no numeric metric to chart."));
      return;
    }
    chart.replaceChildren();
    const points = Math.max(200, Math.min(2000, Math.floor(60000 / ids.length)));
    const set = await api("/api/series", { name: metric, run: ids, points });
    const byId = Object.fromEntries(data.runs.map((r) => [r.run_id, r]));
    const traces = set.series.map((s) => ({
      x: s.steps, y: s.values, type: "scatter", mode: s.steps.length <= 50 ? "lines+markers" : "lines",
      name: S.plotText(runName(byId[s.run_id])), line: { width: 1.5, color: colourOf(s.run_id) }, marker: { size: 4 },
      meta: s.run_id, hovertemplate: "%{fullData.name}<br>step %{x}: %{y}<extra></extra>",
    }));
    await Plotly.react(chart, traces, S.plotLayout({ showlegend: ids.length <= 20, legend: { orientation: "h", y: -0.18 },
      margin: { l: 56, r: 16, t: 8, b: 40 }, yaxis: { title: { text: S.plotText(metric) }, gridcolor: "#eef0f3", zeroline: false, automargin: true,
        ...S.valueAxis(traces.map((t) => t.y)) } }), S.plotConfig);
    const drawn = set.series.reduce((n, s) => n + s.steps.length, 0);
    note.textContent = `${set.series.length} run${set.series.length === 1 ? "" : "s"}, ${drawn.toLocaleString()} points drawn` +
      (set.missing.length ? ` · ${set.missing.length} without ${metric}` : "");
    chart.dataset.traces = String(traces.length);
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
    row("Created", runs.map((r) => S.fmtTime(r.created_at)));
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
    const head = el("tr", {}, el("th", {}, ""), runs.map((r) => el("th", { class: "run-col", dataset: { runId: r.run_id } },
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
    renderTable();
    try { await drawChart(); } catch (err) { chart.replaceChildren(S.errorNotice(err)); }
    saveQuery();
    document.body.dataset.ready = "1";
  }

  select.addEventListener("change", async () => {
    metric = select.value; saveQuery();
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
