/* Datasets: the latest version of each, its type, files, size, when it was made, description, tags. */
"use strict";
(async function () {
  const { api, el, emptyState, errorNotice, fmtBytes, timeEl, tagChips } = window.Studio;
  const root = document.getElementById("datasets");
  let items;
  try { items = await api("/api/datasets"); } catch (err) { root.replaceChildren(errorNotice(err)); document.body.dataset.ready = "1"; return; }
  if (!items.length) {
    root.replaceChildren(emptyState("No datasets yet", "Register one from files in a datastore:",
      "ds = ws.get_default_datastore()\nDataset.File.from_files(path=(ds, 'data')).register(ws, 'my-data')\n" +
      "Dataset.Tabular.from_delimited_files((ds, 'tables/*.csv')).register(ws, 'my-table')"));
    document.body.dataset.ready = "1";
    return;
  }
  const href = (d) => `/datasets/${encodeURIComponent(d.name)}`;
  const rows = items.map((d) => el("tr", { dataset: { dataset: d.name } },
    el("td", {}, el("a", { href: href(d), class: "run-name" }, d.name)),
    el("td", { class: "num" }, el("a", { href: `${href(d)}?version=${d.version}` }, String(d.version))),
    el("td", {}, d.type),
    el("td", { class: "num" }, d.file_count.toLocaleString()),
    el("td", { class: "num", title: `${d.total_size.toLocaleString()} bytes` }, fmtBytes(d.total_size)),
    el("td", {}, timeEl(d.created_at)),
    el("td", { class: "tags" }, d.description),
    el("td", { class: "tags" }, tagChips(d.tags))));
  root.replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "grid", id: "datasets-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", { class: "num" }, "Latest version"), el("th", {}, "Type"),
      el("th", { class: "num" }, "Files"), el("th", { class: "num" }, "Size"), el("th", {}, "Created"),
      el("th", {}, "Description"), el("th", {}, "Tags"))),
    el("tbody", {}, rows))));
  document.body.dataset.ready = "1";
})();
