/* The run page's Inputs card: the datasets the run consumed (name, mode, dataset version, files,
   bytes), each linked to its dataset page; hidden when the run has none. Deferred (it runs after
   run.js): it draws the run run.js holds (window.RunPage) and again on each change of it. */
"use strict";
window.RunInputs = (function () {
  let shown = null;  // the last inputs drawn, as JSON: a re-render with the same draws nothing

  function table(S, inputs) {
    const { el } = S;
    const dataset = (i) => i.dataset_name
      ? el("a", { href: i.url, class: "mono" }, `${i.dataset_name}:${i.dataset_version}`)
      : el("span", { class: "faint", title: "a dataset made in the submitting script, not registered" }, "unregistered");
    return el("div", { class: "table-wrap" }, el("table", { class: "grid compact", id: "inputs-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Input"), el("th", {}, "Mode"), el("th", {}, "Dataset"), el("th", {}, "Type"),
        el("th", { class: "num" }, "Files"), el("th", { class: "num" }, "Size"))),
      el("tbody", {}, inputs.map((i) => el("tr", { dataset: { input: i.name } },
        el("td", { class: "mono" }, i.name), el("td", {}, i.mode), el("td", {}, dataset(i)), el("td", {}, i.kind),
        el("td", { class: "num" }, i.file_count === null ? "" : i.file_count.toLocaleString()),
        el("td", { class: "num", title: i.total_size === null ? "" : `${i.total_size.toLocaleString()} bytes` },
          i.total_size === null ? "" : S.fmtBytes(i.total_size)))))));
  }

  async function render(run) {
    const S = window.Studio;
    const card = document.getElementById("inputs-card");
    const box = document.getElementById("inputs");
    if (!card || !box) return;
    let inputs;
    try {
      inputs = await S.api(`/api/runs/${encodeURIComponent(run.run_id)}/inputs`);
    } catch (err) {
      card.hidden = false;
      box.replaceChildren(S.errorNotice(err));
      return;
    }
    const key = JSON.stringify([inputs, run.inputs]);
    if (key === shown) return;
    shown = key;
    if (inputs.length) {
      box.replaceChildren(table(S, inputs));
    } else if (run.inputs && run.inputs.length) {  // in the definition, not made available yet (a queued run)
      box.replaceChildren(S.el("p", { class: "muted" }, "Made available when the run starts:"),
        S.el("pre", { class: "code" }, JSON.stringify(run.inputs, null, 2)));
    }
    card.hidden = !inputs.length && !(run.inputs && run.inputs.length);
  }

  const page = window.RunPage;
  if (page) {
    page.onChange((run) => render(run));
    if (page.run) render(page.run);
  }
  return { render };
})();
