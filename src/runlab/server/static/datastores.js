/* Datastores: type, where the files are, the default, how many files and bytes each holds now. */
"use strict";
(async function () {
  const { api, el, emptyState, errorNotice, fmtBytes, fmtTime } = window.Studio;
  const root = document.getElementById("datastores");
  let items;
  try { items = await api("/api/datastores"); } catch (err) { root.replaceChildren(errorNotice(err)); document.body.dataset.ready = "1"; return; }
  const where = (d) => [el("span", { class: "mono" }, d.path || d.location),
    d.endpoint ? el("span", { class: "run-id" }, `at ${d.endpoint}${d.region ? ` (${d.region})` : ""}`) : null];
  const files = (d) => d.available ? d.file_count.toLocaleString()
    : el("span", { class: "status Failed", title: d.error || "" }, "unreachable");
  const rows = items.map((d) => el("tr", { dataset: { datastore: d.name } },
    el("td", {}, el("a", { href: `/datastores/${encodeURIComponent(d.name)}`, class: "run-name" }, d.name),
      d.is_default ? el("span", { class: "tag default", title: "the workspace's default datastore" }, "default") : null),
    el("td", {}, d.type),
    el("td", { class: "wrap" }, where(d)),
    el("td", { class: "num" }, files(d)),
    el("td", { class: "num" }, d.available ? fmtBytes(d.total_size) : ""),
    el("td", { class: "muted" }, d.created_at ? fmtTime(d.created_at) : "")));
  const problems = items.filter((d) => !d.available).map((d) =>
    el("div", { class: "notice", role: "alert", dataset: { datastore: d.name } }, `${d.name}: ${d.error}`));
  root.replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "grid", id: "datastores-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Type"), el("th", {}, "Where"),
      el("th", { class: "num" }, "Files"), el("th", { class: "num" }, "Size"), el("th", {}, "Registered"))),
    el("tbody", {}, rows))), ...problems);
  if (items.every((d) => d.available && d.file_count === 0)) {
    root.append(emptyState("No files yet", "Upload a folder to the workspace's default datastore, or register a folder or an S3 bucket:",
      "ds = ws.get_default_datastore()\nds.upload(src_dir='data', target_path='data')\n" +
      "Datastore.register_s3(ws, 'lake', 'my-bucket', endpoint_url='http://127.0.0.1:9000')"));
  }
  document.body.dataset.ready = "1";
})();
