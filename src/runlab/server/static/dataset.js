/* A dataset version: details, definition, every version, the runs that used it, first rows, files. */
"use strict";
(async function () {
  const S = window.Studio;
  const { api, el } = S;
  const { name, version, kind } = S.pageData;
  const base = `/api/datasets/${encodeURIComponent(name)}/versions/${version}`;
  const PAGE = 100;
  const href = (v) => `/datasets/${encodeURIComponent(name)}?version=${v}`;

  function renderDetails(d) {
    const latest = d.versions[0].version;
    document.getElementById("dataset-version").replaceChildren(el("span", { class: "tag", id: "version-badge" }, `version ${d.version}`),
      d.version === latest ? el("span", { class: "tag" }, "latest")
        : el("a", { class: "button small", href: href(latest) }, `latest: version ${latest}`));
    document.getElementById("dataset-description").textContent = d.description;
    const rows = [
      ["Name", d.name],
      ["Version", String(d.version)],
      ["Type", d.type],
      ["ID", el("span", { class: "mono" }, d.id)],
      ["Created", S.fmtTime(d.created_at)],
      ["Data changed", S.fmtTime(d.data_changed_at)],
      ["Files", `${d.file_count.toLocaleString()} (${S.fmtBytes(d.total_size)})`],
      ["Description", d.description || el("span", { class: "faint" }, "—")],
      ["Tags", S.tagChips(d.tags).length ? S.tagChips(d.tags) : el("span", { class: "faint" }, "—")],
    ];
    document.getElementById("details").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { field: k } }, v)]));
  }

  function renderDefinition(d) {
    const source = (s) => el("li", { class: "mono" }, s.datastore ? `${s.datastore}: ${s.path}` : `${s.path} (this machine)`);
    const step = (s) => el("li", { class: "mono" }, `${s.op}(${Object.entries(s).filter(([k]) => k !== "op").map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")})`);
    const rows = [
      ["Sources", el("ul", { id: "sources", class: "plain" }, d.sources.map(source))],
      d.reader ? ["Reader", S.kvTable(d.reader)] : null,
      ["Steps", d.steps.length ? el("ol", { id: "steps", class: "plain" }, d.steps.map(step)) : el("span", { class: "faint" }, "none")],
      ["JSON", el("details", {}, el("summary", {}, "definition"), el("pre", { class: "code" }, JSON.stringify(d.definition, null, 2)))],
    ].filter(Boolean);
    document.getElementById("definition").replaceChildren(el("dl", { class: "details" },
      rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { field: k } }, v)])));
  }

  function renderVersions(d) {
    document.getElementById("versions").replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "grid compact", id: "versions-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Version"), el("th", {}, "Created"), el("th", { class: "num" }, "Files"),
        el("th", { class: "num" }, "Size"), el("th", { class: "num" }, "Runs"))),
      el("tbody", {}, d.versions.map((v) => el("tr", { class: v.version === d.version ? "current" : "", dataset: { version: v.version } },
        el("td", {}, v.version === d.version ? el("b", {}, `${v.version} (shown)`) : el("a", { href: href(v.version) }, String(v.version))),
        el("td", {}, S.timeEl(v.created_at)), el("td", { class: "num" }, v.file_count.toLocaleString()),
        el("td", { class: "num" }, S.fmtBytes(v.total_size)), el("td", { class: "num" }, String(v.run_count || 0))))))));
  }

  function renderRuns(d) {
    document.getElementById("runs-count").textContent = d.runs_total || "";
    const box = document.getElementById("runs");
    if (!d.runs.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No run has used this version yet: pass it to a run with ",
        el("code", {}, `dataset.as_named_input('${d.type === "file" ? "data" : "table"}')${d.type === "file" ? ".as_mount()" : ""}`), "."));
      return;
    }
    box.replaceChildren(el("div", {}, el("div", { class: "table-wrap" }, el("table", { class: "grid compact", id: "runs-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Run"), el("th", {}, "Input"), el("th", {}, "Mode"), el("th", {}, "Status"), el("th", {}, "Created"))),
      el("tbody", {}, d.runs.map((r) => el("tr", { dataset: { runId: r.run_id } },
        el("td", {}, S.runLink(r)), el("td", { class: "mono" }, r.input_name), el("td", {}, r.mode),
        el("td", {}, r.status ? S.statusBadge(r.status) : ""), el("td", {}, S.timeEl(r.created_at))))))),
      d.runs_total > d.runs.length ? el("p", { class: "muted" }, `the newest ${d.runs.length} of ${d.runs_total.toLocaleString()} runs`) : null));
  }

  async function renderPreview() {
    if (kind !== "tabular") return;
    const card = document.getElementById("preview-card");
    const box = document.getElementById("preview");
    card.hidden = false;
    box.replaceChildren(el("div", { class: "loading" }, "Reading the first rows…"));
    try {
      const p = await api(`${base}/preview`, { rows: 20 });
      if (!p.available) { box.replaceChildren(el("p", { class: "muted", id: "preview-reason" }, `No preview: ${p.reason}`)); return; }
      box.replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "grid compact", id: "preview-table" },
        el("thead", {}, el("tr", {}, p.columns.map((c) => el("th", { title: c.type }, c.name, el("span", { class: "run-id" }, c.type))))),
        el("tbody", {}, p.rows.map((row) => el("tr", {}, row.map((v) => el("td", {}, v === null ? el("span", { class: "faint" }, "null") : S.fmtValue(v)))))))));
    } catch (err) { box.replaceChildren(S.errorNotice(err)); }
  }

  const filesBox = document.getElementById("files");
  async function loadFiles(offset) {
    let page;
    try { page = await api(`${base}/files`, { offset, limit: PAGE }); } catch (err) { filesBox.replaceChildren(S.errorNotice(err)); return; }
    document.getElementById("files-summary").textContent = `${page.total.toLocaleString()} file${page.total === 1 ? "" : "s"}`;
    filesBox.replaceChildren(page.total ? el("div", { class: "table-wrap" }, el("table", { class: "grid compact", id: "files-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", { class: "num" }, "Size"), el("th", {}, "sha256"), el("th", {}, "Where"))),
      el("tbody", {}, page.files.map((f) => el("tr", { dataset: { name: f.name } },
        el("td", { class: "mono" }, f.name), el("td", { class: "num", title: `${f.size.toLocaleString()} bytes` }, S.fmtBytes(f.size)),
        el("td", { class: "mono", title: f.sha256 || "" }, f.sha256 ? f.sha256.slice(0, 16) + "…" : ""),
        el("td", { class: "mono muted" }, f.datastore ? `${f.datastore}: ${f.path}` : f.path))))))
      : el("p", { class: "empty" }, "This version holds no files."));
    const pager = document.getElementById("files-pager");
    const last = page.offset + page.files.length;
    pager.hidden = page.total <= page.limit;
    pager.replaceChildren(el("span", { id: "files-range" }, `${page.total ? page.offset + 1 : 0}–${last} of ${page.total.toLocaleString()}`),
      el("button", { class: "button small", id: "files-prev", disabled: page.offset === 0, onclick: () => loadFiles(Math.max(0, page.offset - PAGE)) }, "Previous"),
      el("button", { class: "button small", id: "files-next", disabled: last >= page.total, onclick: () => loadFiles(page.offset + PAGE) }, "Next"));
  }

  let details;
  try { details = await api(base); } catch (err) { document.getElementById("main").replaceChildren(S.errorNotice(err)); document.body.dataset.ready = "1"; return; }
  renderDetails(details);
  renderDefinition(details);
  renderVersions(details);
  renderRuns(details);
  await Promise.all([loadFiles(0), renderPreview()]);
  document.body.dataset.ready = "1";
})();
