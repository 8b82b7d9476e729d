/* Experiments: name, number of runs, last run, runs per status. */
"use strict";
(async function () {
  const { api, el, statusBadge, timeEl, emptyState, errorNotice, fmtTime } = window.Studio;
  const root = document.getElementById("experiments");
  let experiments;
  try { experiments = await api("/api/experiments"); } catch (err) { root.replaceChildren(errorNotice(err)); return; }
  if (!experiments.length) {
    root.replaceChildren(emptyState("No experiments yet",
      "An experiment appears with its first run. Start one from Python:",
      "from runlab import Workspace, Experiment\nws = Workspace.from_config()\n" +
      "run = Experiment(ws, 'my-experiment').start_logging()\nrun.log('loss', 0.5)\nrun.complete()"));
    document.body.dataset.ready = "1";
    return;
  }
  const rows = experiments.map((e) => el("tr", { dataset: { experiment: e.name } },
    el("td", {}, el("a", { href: `/runs?experiment=${encodeURIComponent(e.name)}`, class: "run-name" }, e.name)),
    el("td", { class: "num" }, e.run_count.toLocaleString()),
    el("td", {}, e.last_run_id ? [el("a", { href: `/runs/${encodeURIComponent(e.last_run_id)}` }, timeEl(e.last_run_at))] : el("span", { class: "faint" }, "no runs")),
    el("td", {}, el("div", { class: "counts" }, Object.entries(e.status_counts).map(([s, n]) => {
      const badge = statusBadge(s); badge.textContent = `${s} ${n.toLocaleString()}`; return badge;
    }))),
    el("td", { class: "muted" }, fmtTime(e.created_at))));
  root.replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "grid", id: "experiments-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", { class: "num" }, "Runs"), el("th", {}, "Last run"),
      el("th", {}, "Status"), el("th", {}, "Created"))),
    el("tbody", {}, rows))));
  document.body.dataset.ready = "1";
})();
