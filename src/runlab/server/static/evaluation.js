/* Run page: charts of evaluation logs (run.log_confusion_matrix, log_accuracy_table, log_residuals,
   log_predictions), drawn with plotly.js from the dict Azure ML's schema gives each. */
"use strict";
window.StudioEval = (function () {
  const KINDS = ["confusion_matrix", "accuracy_table", "residuals", "predictions"];
  const DESCRIPTIONS = {
    confusion_matrix: "rows: true class · columns: predicted class",
    accuracy_table: "one vs rest, per class, over the probability thresholds",
    residuals: "residuals (true − predicted), binned",
    predictions: "mean prediction per bin of true values, ± its spread",
  };
  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => entries.forEach((e) => { if (e.isIntersecting) draw(e.target); }))
    : null;

  /** A placeholder for metric summary ``m`` with its series ``s``; drawn once it is on screen. */
  function element(m, s) {
    const value = s.values[s.values.length - 1];
    const div = document.createElement("div");
    div.className = `chart eval-chart eval-${m.kind}`;
    div.dataset.kind = m.kind;
    div.evalValue = value;
    const box = document.createElement("div");
    box.className = "eval";
    const note = document.createElement("p");
    note.className = "faint";
    note.textContent = DESCRIPTIONS[m.kind] + (s.values.length > 1 ? ` · the last of ${s.values.length} logged` : "");
    box.append(div, note);
    return box;
  }

  /** Draw every evaluation chart under ``root`` not drawn yet: now if it is displayed, else (a hidden
      tab: plotly cannot measure it) once it comes into view. */
  function drawPending(root) {
    root.querySelectorAll(".eval-chart:not([data-drawn])").forEach((div) => {
      if (div.offsetParent !== null || !observer) draw(div); else observer.observe(div);
    });
  }

  function draw(div) {
    if (div.dataset.drawn || !div.isConnected) return;
    div.dataset.drawn = "1";
    if (observer) observer.unobserve(div);
    const S = window.Studio;
    const data = (div.evalValue || {}).data || {};
    const fig = FIGURES[div.dataset.kind](data, S);
    Plotly.newPlot(div, fig.traces, S.plotLayout(fig.layout), S.plotConfig)
      .then(() => { div.dataset.ready = "1"; });
  }

  const labels = (d) => (d.class_labels || []).map((x) => window.Studio.plotText(x));  // plotly reads markup
  const centres = (edges) => edges.slice(0, -1).map((e, i) => (e + edges[i + 1]) / 2);
  const ratio = (a, b) => (b ? a / b : null);

  const FIGURES = {
    confusion_matrix(d) {
      const names = labels(d);
      return {
        traces: [{ type: "heatmap", z: d.matrix, x: names, y: names, colorscale: [[0, "#f4f7fe"], [1, "#1f4fd1"]], texttemplate: "%{z}",
          hovertemplate: "true %{y} · predicted %{x}: %{z}<extra></extra>", showscale: false }],
        layout: { xaxis: { title: { text: "predicted" }, type: "category", side: "bottom" },
          yaxis: { title: { text: "true" }, type: "category", autorange: "reversed", automargin: true },
          margin: { l: 72, r: 16, t: 8, b: 48 } },
      };
    },
    accuracy_table(d, S) {
      const names = labels(d), traces = [];
      (d.probability_tables || []).forEach((rows, c) => {
        const fpr = rows.map(([tp, fp, tn]) => ratio(fp, fp + tn));
        const tpr = rows.map(([tp, , , fn]) => ratio(tp, tp + fn));
        const precision = rows.map(([tp, fp]) => ratio(tp, tp + fp));
        const line = { color: S.colour(c), width: 1.6 };
        traces.push({ type: "scatter", mode: "lines", x: fpr, y: tpr, name: names[c], line, xaxis: "x", yaxis: "y",
          hovertemplate: `${names[c]}: FPR %{x:.3f}, TPR %{y:.3f}<extra>ROC</extra>` });
        traces.push({ type: "scatter", mode: "lines", x: tpr, y: precision, name: names[c], line, xaxis: "x2", yaxis: "y2",
          showlegend: false, hovertemplate: `${names[c]}: recall %{x:.3f}, precision %{y:.3f}<extra>PR</extra>` });
      });
      traces.push({ type: "scatter", mode: "lines", x: [0, 1], y: [0, 1], line: { dash: "dot", color: "#98a2b3", width: 1 },
        hoverinfo: "skip", showlegend: false, xaxis: "x", yaxis: "y" });
      const axis = (title, domain) => ({ title: { text: title }, range: [0, 1.02], domain, gridcolor: "#eef0f3", zeroline: false });
      return {
        traces,
        layout: { xaxis: axis("false positive rate (ROC)", [0, 0.45]), yaxis: axis("true positive rate"),
          xaxis2: { ...axis("recall (precision-recall)", [0.55, 1]), anchor: "y2" },
          yaxis2: { ...axis("precision"), anchor: "x2" }, showlegend: names.length > 1,
          legend: { orientation: "h", y: -0.25 }, margin: { l: 56, r: 16, t: 8, b: 56 } },
      };
    },
    residuals(d) {
      const edges = d.bin_edges || [];
      return {
        traces: [{ type: "bar", x: centres(edges), y: d.bin_counts, width: edges.slice(1).map((e, i) => e - edges[i]),
          marker: { color: "#528bff" }, hovertemplate: "%{x}: %{y}<extra></extra>" }],
        layout: { xaxis: { title: { text: "residual" } }, yaxis: { title: { text: "count" } }, bargap: 0.02 },
      };
    },
    predictions(d) {
      const edges = d.bin_edges || [], x = centres(edges);
      const lo = edges.length ? edges[0] : 0, hi = edges.length ? edges[edges.length - 1] : 1;
      return {
        traces: [
          { type: "scatter", mode: "lines", x: [lo, hi], y: [lo, hi], line: { dash: "dot", color: "#98a2b3", width: 1 },
            hoverinfo: "skip" },
          { type: "scatter", mode: "lines+markers", x, y: d.bin_averages, marker: { size: 5, color: "#528bff" },
            error_y: { type: "data", array: d.bin_errors, visible: true, color: "#98a2b3" },
            customdata: d.bin_counts, hovertemplate: "true %{x}: predicted %{y} (%{customdata} values)<extra></extra>" },
        ],
        layout: { xaxis: { title: { text: "true value" } }, yaxis: { title: { text: "predicted value" } } },
      };
    },
  };

  return { KINDS, element, drawPending };
})();
