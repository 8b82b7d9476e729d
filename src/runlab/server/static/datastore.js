/* A datastore: where its files are, and its folders and files, one folder and one page at a time. */
"use strict";
(async function () {
  const S = window.Studio;
  const { api, el } = S;
  const name = S.pageData.name;
  const base = `/api/datastores/${encodeURIComponent(name)}`;
  const PAGE = 100;
  const query = new URLSearchParams(location.search);
  let prefix = S.pageData.prefix || "";
  let offset = Math.max(0, parseInt(query.get("offset") || "0", 10) || 0);

  function renderDetails(d) {
    document.getElementById("datastore-badges").replaceChildren(
      d.is_default ? el("span", { class: "tag default" }, "default") : "",
      d.available ? "" : el("span", { class: "status Failed" }, "unreachable"));
    document.getElementById("datastore-where").textContent = d.location;
    const rows = [
      ["Type", d.type],
      ["Where", el("span", { class: "mono" }, d.path || d.location)],
      d.endpoint ? ["Endpoint", el("span", { class: "mono" }, d.endpoint)] : null,
      d.region ? ["Region", d.region] : null,
      ["Default", d.is_default ? "yes" : "no"],
      ["Registered", d.created_at ? S.fmtTime(d.created_at) : "on first use"],
      ["Files", d.available ? `${d.file_count.toLocaleString()} (${S.fmtBytes(d.total_size)})` : ""],
    ].filter(Boolean);
    const dl = document.getElementById("details");
    dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { field: k } }, v)]));
    if (!d.available) dl.append(el("dt", {}, "Error"), el("dd", {}, el("div", { class: "error-box", dataset: { field: "Error" } }, d.error)));
  }

  function crumbs(listing) {
    const parts = listing.prefix.split("/").filter(Boolean);
    const items = [el("a", { href: "#", dataset: { prefix: "" } }, name)];
    parts.forEach((part, i) => items.push(el("span", { class: "sep" }, "/"),
      el("a", { href: "#", dataset: { prefix: parts.slice(0, i + 1).join("/") + "/" } }, part)));
    return items;
  }

  function entryRow(e) {
    if (e.kind === "folder") {
      return el("tr", { class: "folder", dataset: { path: e.path, kind: "folder" } },
        el("td", {}, el("a", { href: "#", dataset: { prefix: e.path } }, `${e.name}/`)),
        el("td", { class: "num" }, `${e.file_count.toLocaleString()} file${e.file_count === 1 ? "" : "s"}`),
        el("td", { class: "num" }, S.fmtBytes(e.size)), el("td", {}, ""), el("td", { class: "muted" }, S.fmtTime(e.modified_at)));
    }
    return el("tr", { dataset: { path: e.path, kind: "file" } },
      el("td", { class: "mono" }, e.name), el("td", {}, ""), el("td", { class: "num", title: `${e.size.toLocaleString()} bytes` }, S.fmtBytes(e.size)),
      el("td", { class: "mono", title: e.sha256 || "not recorded: files written by runlab's uploads have one" }, e.sha256 ? e.sha256.slice(0, 16) + "…" : el("span", { class: "faint" }, "—")),
      el("td", { class: "muted" }, S.fmtTime(e.modified_at)));
  }

  function pager(box, listing, go) {
    box.hidden = listing.total <= listing.limit && listing.offset === 0;
    const last = Math.min(listing.offset + listing.entries.length, listing.total);
    box.replaceChildren(el("span", { id: "files-range" }, `${listing.total ? listing.offset + 1 : 0}–${last} of ${listing.total.toLocaleString()}`),
      el("button", { class: "button small", id: "files-prev", disabled: listing.offset === 0, onclick: () => go(Math.max(0, listing.offset - listing.limit)) }, "Previous"),
      el("button", { class: "button small", id: "files-next", disabled: last >= listing.total, onclick: () => go(listing.offset + listing.limit) }, "Next"));
  }

  const box = document.getElementById("files");
  async function load() {
    document.body.dataset.ready = "0";
    let listing;
    try {
      listing = await api(`${base}/files`, { prefix, offset, limit: PAGE });
    } catch (err) {
      box.replaceChildren(S.errorNotice(err));
      document.getElementById("files-pager").hidden = true;
      document.body.dataset.ready = "1";
      return;
    }
    S.setQuery({ prefix: listing.prefix, offset: listing.offset || "" });
    const folderCrumbs = document.getElementById("folder-crumbs");
    folderCrumbs.replaceChildren(...crumbs(listing));
    document.getElementById("folder-summary").textContent =
      `${listing.file_count.toLocaleString()} file${listing.file_count === 1 ? "" : "s"}, ${S.fmtBytes(listing.total_size)} in this folder`;
    if (!listing.total) {
      box.replaceChildren(S.emptyState(listing.prefix ? "No files in this folder" : "No files yet",
        "Upload files to this datastore:", `ds = Datastore.get(ws, '${name}')\nds.upload(src_dir='data', target_path='data')`));
    } else {
      box.replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "grid compact", id: "files-table" },
        el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", { class: "num" }, "Files"), el("th", { class: "num" }, "Size"),
          el("th", {}, "sha256"), el("th", {}, "Modified"))),
        el("tbody", {}, listing.parent !== null ? el("tr", { class: "folder up" }, el("td", {}, el("a", { href: "#", dataset: { prefix: listing.parent } }, "../")),
          el("td", {}), el("td", {}), el("td", {}), el("td", {})) : null, listing.entries.map(entryRow)))));
    }
    pager(document.getElementById("files-pager"), listing, (next) => { offset = next; load(); });
    document.body.dataset.ready = "1";
  }

  document.getElementById("datastore-files").addEventListener("click", (ev) => {
    const link = ev.target.closest("a[data-prefix]");
    if (!link) return;
    ev.preventDefault();
    prefix = link.dataset.prefix;
    offset = 0;
    load();
  });

  try {
    renderDetails(await api(base));
  } catch (err) {
    document.getElementById("details").replaceChildren(S.errorNotice(err));
  }
  await load();
})();
