/* Environments, compute targets, datastores, datasets, models: a table, or how to create the first. */
"use strict";
(async function () {
  const { api, el, emptyState, errorNotice, fmtTime, fmtValue, tagChips, pageData } = window.Studio;
  const root = document.getElementById("assets");
  let items;
  try { items = await api(pageData.api); } catch (err) { root.replaceChildren(errorNotice(err)); return; }
  if (!items.length) {
    const e = pageData.empty;
    root.replaceChildren(emptyState(e.title, e.text, e.code));
    document.body.dataset.ready = "1";
    return;
  }
  const modelFiles = (files) => el("ul", { class: "model-files" }, files.map((f) =>
    el("li", {}, el("a", { href: `${f.url}?download=true`, title: `sha256 ${f.sha256}` }, f.path),
      el("span", { class: "faint" }, ` ${window.Studio.fmtBytes(f.size)}`))));
  const BUILD_STATUS_CLASS = { Built: "Completed", Failed: "Failed", "Not built": "NotStarted" };
  const cell = (key, value) => {
    if (key === "created_at") return fmtTime(value);
    if (key === "tags") return tagChips(value);
    if (key === "run_id" && value) return el("a", { href: `/runs/${encodeURIComponent(value)}` }, value);
    if (key === "state") return el("span", { class: `status ${value === "busy" ? "Running" : "Completed"}` }, value);
    if (key === "build_log") return value ? el("a", { href: value, target: "_blank" }, "build log") : el("span", { class: "faint" }, "—");
    if (key === "build_status") return el("span", { class: `status ${BUILD_STATUS_CLASS[value] || ""}`, dataset: { build: value || "" } }, value || "");
    if (key === "files" && Array.isArray(value)) return modelFiles(value);
    if (typeof value === "boolean") return value ? "yes" : "";
    return fmtValue(value);
  };
  root.replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, pageData.columns.map(([, label]) => el("th", {}, label)))),
    el("tbody", {}, items.map((item) => el("tr", pageData.kind === "models" ? { id: item.id, dataset: { model: item.id } } : {},
      pageData.columns.map(([key]) => el("td", {}, cell(key, item[key])))))))));
  const linked = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (linked) { linked.classList.add("selected"); linked.scrollIntoView({ block: "center" }); }  // /models#net:2
  document.body.dataset.ready = "1";
})();
