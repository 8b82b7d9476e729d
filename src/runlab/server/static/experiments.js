/* Experiments: name, number of runs, last run, runs per status; archive and unarchive. The list
   refreshes (one request) every few seconds while the tab is visible and a run has not ended. */
"use strict";
(async function () {
  const S = window.Studio;
  const { api, el, statusBadge, timeEl, emptyState, errorNotice, fmtTime } = S;
  const ACTIVE = new Set(["Queued", "Preparing", "Starting", "Running", "Finalizing", "CancelRequested", "NotStarted"]);
  const REFRESH_MS = 4000;
  const root = document.getElementById("experiments");
  const showArchived = document.getElementById("show-archived");
  showArchived.checked = new URLSearchParams(location.search).get("archived") === "1";
  let experiments = [];
  let shownJson = "";

  function render() {
    if (!experiments.length) {
      root.replaceChildren(showArchived.checked ? emptyState("No experiments", "") : emptyState("No experiments yet",
        "An experiment appears with its first run. Start one from Python:",
        "from runlab import Workspace, Experiment\nws = Workspace.from_config()\n" +
        "run = Experiment(ws, 'my-experiment').start_logging()\nrun.log('loss', 0.5)\nrun.complete()"));
      return;
    }
    const rows = experiments.map((e) => {
      const archive = el("button", { class: "button small", type: "button", dataset: { archive: e.name } },
        e.archived ? "Unarchive" : "Archive");
      archive.addEventListener("click", async () => {
        try { await S.send("POST", `/api/experiments/${encodeURIComponent(e.name)}/archive`, { archived: !e.archived }); }
        catch (err) { root.prepend(errorNotice(err)); return; }
        await load();
      });
      return el("tr", { dataset: { experiment: e.name, archived: e.archived ? "1" : "0" } },
        el("td", {}, el("a", { href: `/runs?experiment=${encodeURIComponent(e.name)}`, class: "run-name" }, e.name),
          e.archived ? el("span", { class: "archived-mark" }, "archived") : null),
        el("td", { class: "num" }, e.run_count.toLocaleString()),
        el("td", {}, e.last_run_id ? [el("a", { href: `/runs/${encodeURIComponent(e.last_run_id)}` }, timeEl(e.last_run_at))] : el("span", { class: "faint" }, "no runs")),
        el("td", {}, el("div", { class: "counts" }, Object.entries(e.status_counts).map(([s, n]) => {
          const badge = statusBadge(s); badge.textContent = `${s} ${n.toLocaleString()}`; return badge;
        }))),
        el("td", { class: "muted" }, fmtTime(e.created_at)),
        el("td", {}, archive));
    });
    root.replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "grid", id: "experiments-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", { class: "num" }, "Runs"), el("th", {}, "Last run"),
        el("th", {}, "Status"), el("th", {}, "Created"), el("th", {}, ""))),
      el("tbody", {}, rows))));
  }

  async function load() {
    let list;
    try { list = await api("/api/experiments", { archived: showArchived.checked ? "include" : "" }); }
    catch (err) { root.replaceChildren(errorNotice(err)); document.body.dataset.ready = "1"; return; }
    const json = JSON.stringify(list);
    if (json !== shownJson) { experiments = list; shownJson = json; render(); }  // unchanged: nothing redrawn
    document.body.dataset.ready = "1";
  }
  const hasActive = () => experiments.some((e) => Object.keys(e.status_counts).some((s) => ACTIVE.has(s)));
  showArchived.addEventListener("change", () => { S.setQuery({ archived: showArchived.checked }); load(); });
  setInterval(() => { if (!document.hidden && hasActive()) load(); }, REFRESH_MS);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) load(); });
  await load();
})();
