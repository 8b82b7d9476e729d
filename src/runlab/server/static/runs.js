/* Runs table: sort by any column, a metric's last value, a tag or a property; filter by status, tag,
   search and a query (metrics.loss < 0.5 and tags.stage = "dev"), parsed on the server; columns of
   metrics, tags and properties from a picker; paginate on the server (fast with 100,000 runs); select
   runs to compare, tag, cancel, archive or delete; export the view as CSV; saved views; keys j/k,
   Enter, x, c; rows of runs that have not ended refresh while the tab is visible. */
"use strict";
(async function () {
  const S = window.Studio;
  const { api, el } = S;
  const STATUSES = ["Queued", "Preparing", "Running", "Finalizing", "Completed", "Failed", "Canceled"];
  const ENDED = new Set(["Completed", "Failed", "Canceled"]);
  const DESC_FIRST = new Set(["created_at", "duration", "started_at", "ended_at"]);
  const REFRESH_MS = 4000;
  const VIEWS_KEY = "runlab.runs.views";

  const q = new URLSearchParams(location.search);
  const state = {
    experiment: q.get("experiment") || "",
    status: q.getAll("status"),
    tag: q.get("tag") || "",
    search: q.get("search") || "",
    query: q.get("q") || "",
    sort: q.get("sort") || "created_at",
    order: q.get("order") || "desc",
    limit: Number(q.get("limit")) || 50,
    offset: Number(q.get("offset")) || 0,
    metric: q.getAll("metric"),
    tagcol: q.getAll("tagcol"),
    propcol: q.getAll("propcol"),
    children: q.get("children") === "1",
    archived: q.get("archived") === "1",
  };
  const selected = new Set();
  let columnKeys = { metrics: [], tags: [], properties: [] };
  let request = 0;
  let focusedSort = null;  // the sort header the keyboard was on, focused again after the redraw
  let rowsShown = [];
  let cursor = -1;  // the row j/k is on

  const table = document.getElementById("runs-table");
  const thead = table.querySelector("thead"), tbody = table.querySelector("tbody");
  const emptyBox = document.getElementById("runs-empty"), pager = document.getElementById("pager");
  const compareButton = document.getElementById("compare-button");
  const queryBox = document.getElementById("query"), queryError = document.getElementById("query-error");

  // -- header, filters -------------------------------------------------------------------
  if (state.experiment) {
    document.getElementById("runs-title").textContent = state.experiment;
    document.getElementById("crumbs").append(el("span", { class: "sep" }, "/"), "Runs");
    document.title = `${state.experiment} · runlab studio`;
  } else {
    document.getElementById("runs-title").textContent = "All runs";
  }

  const search = document.getElementById("search");
  search.value = state.search;
  search.addEventListener("input", S.debounce(() => { state.search = search.value.trim(); state.offset = 0; load(); }, 250));

  const tagInput = document.getElementById("tag-filter");
  tagInput.value = state.tag;
  tagInput.addEventListener("input", S.debounce(() => { state.tag = tagInput.value.trim(); state.offset = 0; load(); }, 350));

  queryBox.value = state.query;
  const applyQuery = () => { state.query = queryBox.value.trim(); state.offset = 0; load(); };
  queryBox.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); applyQuery(); } });
  queryBox.addEventListener("change", applyQuery);
  document.getElementById("query-clear").addEventListener("click", () => { queryBox.value = ""; applyQuery(); });

  const chips = document.getElementById("status-filter");
  for (const s of STATUSES) {
    const chip = el("button", { class: "chip" + (state.status.includes(s) ? " on" : ""), type: "button", dataset: { status: s } }, s);
    chip.addEventListener("click", () => {
      state.status = state.status.includes(s) ? state.status.filter((x) => x !== s) : [...state.status, s];
      chip.classList.toggle("on", state.status.includes(s));
      state.offset = 0; load();
    });
    chips.append(chip);
  }

  const children = document.getElementById("children");
  children.checked = state.children;
  children.addEventListener("change", () => { state.children = children.checked; state.offset = 0; load(); });
  const showArchived = document.getElementById("show-archived");
  showArchived.checked = state.archived;
  showArchived.addEventListener("change", () => { state.archived = showArchived.checked; state.offset = 0; load(); });

  const compareUrl = () => "/compare?runs=" + [...selected].map(encodeURIComponent).join(",");
  compareButton.addEventListener("click", () => { if (selected.size >= 2) location.href = compareUrl(); });
  const updateSelection = () => {
    compareButton.disabled = selected.size < 2;
    compareButton.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
    document.getElementById("bulk-bar").hidden = selected.size === 0;
    document.getElementById("bulk-count").textContent = `${selected.size} selected`;
    tbody.querySelectorAll("tr[data-run-id]").forEach((tr) => tr.classList.toggle("selected", selected.has(tr.dataset.runId)));
  };

  // -- column picker: closes on Esc and on a click outside it ----------------------------
  S.dropdown(document.getElementById("columns"));  // the run page's metric picker closes the same way

  function pickerSection(title, names, chosen, kind) {
    if (!names.length) return el("div", { class: "picker-section" }, el("h3", {}, title), el("p", { class: "muted" }, "none yet"));
    return el("div", { class: "picker-section" }, el("h3", {}, title), names.map((name) => {
      const box = el("input", { type: "checkbox", value: name, dataset: { kind } });
      box.checked = state[chosen].includes(name);
      box.addEventListener("change", () => {
        state[chosen] = box.checked ? [...state[chosen], name] : state[chosen].filter((m) => m !== name);
        const sortKey = `${kind}:${name}`;
        if (!box.checked && state.sort === sortKey) { state.sort = "created_at"; state.order = "desc"; }
        load();
      });
      return el("label", {}, box, name);
    }));
  }
  function renderColumnPicker() {
    document.getElementById("columns-body").replaceChildren(
      pickerSection("Metrics", columnKeys.metrics.map((m) => m.name), "metric", "metric"),
      pickerSection("Tags", columnKeys.tags, "tagcol", "tag"),
      pickerSection("Properties", columnKeys.properties, "propcol", "property"));
  }

  // -- table -----------------------------------------------------------------------------
  function columns() {
    const cols = [
      { key: "run", label: "Run", sort: "run_id", cls: "sticky-run" },
      state.experiment ? null : { key: "experiment", label: "Experiment", sort: "experiment" },
      { key: "status", label: "Status", sort: "status" },
      { key: "created", label: "Created", sort: "created_at" },
      { key: "duration", label: "Duration", sort: "duration", num: true },
      { key: "target", label: "Compute", sort: "target" },
      { key: "user", label: "User" },
      ...state.metric.map((m) => ({ key: `metric:${m}`, label: m, sort: `metric:${m}`, num: true, metric: m })),
      ...state.tagcol.map((t) => ({ key: `tag:${t}`, label: t, sort: `tag:${t}`, tag: t, title: `tag ${t}` })),
      ...state.propcol.map((p) => ({ key: `property:${p}`, label: p, sort: `property:${p}`, prop: p, title: `property ${p}` })),
      { key: "tags", label: "Tags" },
    ];
    return cols.filter(Boolean);
  }

  function renderHead(rows) {
    const all = el("input", { type: "checkbox", title: "select this page", "aria-label": "select all runs on this page" });
    all.checked = rows.length > 0 && rows.every((r) => selected.has(r.run_id));
    all.addEventListener("change", () => {
      rows.forEach((r) => (all.checked ? selected.add(r.run_id) : selected.delete(r.run_id)));
      tbody.querySelectorAll("input[type=checkbox]").forEach((b) => (b.checked = all.checked));
      updateSelection();
    });
    // A sortable header is a button: reached with Tab, sorted with Enter or Space (its click
    // bubbles to the header, which a mouse may click anywhere), and focused again once redrawn.
    thead.replaceChildren(el("tr", {}, el("th", { class: "sel sticky-sel" }, all), columns().map((c) => {
      const cls = [c.num ? "num" : "", c.cls || "", c.tag ? "tag-col" : "", c.prop ? "prop-col" : ""].join(" ").trim() || null;
      if (!c.sort) return withResizer(el("th", { class: cls, dataset: { col: c.key } }, c.label), c.key);
      const sorted = state.sort === c.sort;
      const button = el("button", { type: "button", class: "sort", title: `sort by ${c.title || c.label}` }, c.label,
        sorted ? el("span", { class: "arrow", "aria-hidden": "true" }, state.order === "desc" ? "▼" : "▲") : null);
      const th = el("th", { class: cls, dataset: { sort: c.sort, col: c.key },
        "aria-sort": sorted ? (state.order === "desc" ? "descending" : "ascending") : "none" }, button);
      withResizer(th, c.key);
      th.addEventListener("click", () => {
        if (state.sort === c.sort) state.order = state.order === "desc" ? "asc" : "desc";
        else { state.sort = c.sort; state.order = DESC_FIRST.has(c.sort) || c.metric ? "desc" : "asc"; }
        state.offset = 0;
        focusedSort = thead.contains(document.activeElement) ? c.sort : null;
        load();
      });
      return th;
    })));
    if (focusedSort) thead.querySelector(`th[data-sort="${CSS.escape(focusedSort)}"] button`)?.focus();
  }

  /* Column widths: a handle at each header's right edge, dragged (or moved with the arrow keys when
     focused); kept per column in localStorage and applied to the header and its cells by one style
     rule each, so a column can be made narrower than its content (which is then cut with an ellipsis). */
  const WIDTHS_KEY = "runlab.runs.widths";
  const widthStyle = document.head.appendChild(document.createElement("style"));
  function applyWidths() {
    const widths = S.stored(WIDTHS_KEY, {});
    widthStyle.textContent = Object.entries(widths).map(([key, w]) => {
      const sel = `.runs-grid [data-col="${CSS.escape(key)}"]`;
      return `${sel} { width: ${w}px; min-width: ${w}px; max-width: ${w}px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }`;
    }).join("\n");
  }
  function setWidth(key, w) {
    const widths = S.stored(WIDTHS_KEY, {});
    widths[key] = Math.max(40, Math.min(800, Math.round(w)));
    S.store(WIDTHS_KEY, widths);
    applyWidths();
  }
  function withResizer(th, key) {
    // the handle is for the mouse (out of the tab order: Tab goes from header to header); keys resize the
    // focused header with Alt+ArrowLeft / Alt+ArrowRight
    const handle = el("span", { class: "col-resize", role: "separator", tabindex: "-1", "aria-orientation": "vertical",
      "aria-label": `resize column ${key}`, title: "drag to resize (double-click: fit; keys: Alt+←/→ on the header)" });
    handle.addEventListener("click", (e) => e.stopPropagation());  // never a sort
    handle.addEventListener("dblclick", (e) => {
      e.stopPropagation();
      const widths = S.stored(WIDTHS_KEY, {}); delete widths[key]; S.store(WIDTHS_KEY, widths); applyWidths();
    });
    th.addEventListener("keydown", (e) => {
      if (!e.altKey || (e.key !== "ArrowLeft" && e.key !== "ArrowRight")) return;
      e.preventDefault(); e.stopPropagation();
      setWidth(key, th.getBoundingClientRect().width + (e.key === "ArrowRight" ? 16 : -16));
    });
    handle.addEventListener("pointerdown", (e) => {
      e.preventDefault(); e.stopPropagation();
      const start = e.clientX, from = th.getBoundingClientRect().width;
      handle.setPointerCapture(e.pointerId);
      const move = (ev) => setWidth(key, from + ev.clientX - start);
      const up = () => { handle.removeEventListener("pointermove", move); handle.removeEventListener("pointerup", up); };
      handle.addEventListener("pointermove", move);
      handle.addEventListener("pointerup", up);
    });
    th.appendChild(handle);
    return th;
  }
  applyWidths();

  function renderRow(run) {
    const box = el("input", { type: "checkbox", "aria-label": `select ${run.run_id}` });
    box.checked = selected.has(run.run_id);
    box.addEventListener("change", () => { box.checked ? selected.add(run.run_id) : selected.delete(run.run_id); updateSelection(); });
    const cells = columns().map((c) => {
      const cell = cellFor(c);
      cell.dataset.col = c.key;
      return cell;
    });
    return el("tr", { dataset: { runId: run.run_id, status: run.status } }, el("td", { class: "sel sticky-sel" }, box), cells);

    function cellFor(c) {
      switch (c.key) {
        case "run": return el("td", { class: "sticky-run" }, S.runLink(run), run.archived ? el("span", { class: "archived-mark", title: "archived" }, "archived") : null);
        case "experiment": return el("td", {}, el("a", { href: `/runs?experiment=${encodeURIComponent(run.experiment)}` }, run.experiment));
        case "status": return el("td", { title: run.error_message || "" }, S.statusBadge(run.status));
        case "created": return el("td", {}, S.timeEl(run.created_at));
        case "duration": return el("td", { class: "num" }, S.fmtDuration(run.duration_s));
        case "target": return el("td", {}, run.target);
        case "user": return el("td", { class: "muted" }, run.user || "");
        case "tags": return el("td", { class: "tags" }, S.tagChips(run.tags));
        default:
          if (c.tag) return el("td", { dataset: { tag: c.tag } }, c.tag in run.tags ? S.tagValue(run.tags[c.tag]) : "");
          if (c.prop) return el("td", { dataset: { property: c.prop } }, (run.properties || {})[c.prop] ?? "");
          return el("td", { class: "num", dataset: { metric: c.metric } }, S.fmtValue(run.metrics[c.metric]));
      }
    }
  }

  function renderPager(page) {
    const { total, offset, limit } = page;
    const first = total ? offset + 1 : 0, last = Math.min(offset + limit, total);
    const size = el("select", { class: "input", "aria-label": "runs per page" }, [25, 50, 100, 200].map((n) => {
      const o = el("option", { value: n }, `${n} per page`); if (n === limit) o.selected = true; return o;
    }));
    size.addEventListener("change", () => { state.limit = Number(size.value); state.offset = 0; load(); });
    const prev = el("button", { class: "button small", id: "prev", type: "button", disabled: offset === 0 }, "‹ Previous");
    const next = el("button", { class: "button small", id: "next", type: "button", disabled: last >= total }, "Next ›");
    prev.addEventListener("click", () => { state.offset = Math.max(0, offset - limit); load(); });
    next.addEventListener("click", () => { state.offset = offset + limit; load(); });
    const pages = Math.max(1, Math.ceil(total / limit));
    pager.replaceChildren(el("span", { id: "range" }, `${first.toLocaleString()}–${last.toLocaleString()} of ${total.toLocaleString()} runs`),
      size, prev, el("span", {}, `page ${Math.floor(offset / limit) + 1} of ${pages.toLocaleString()}`), next);
  }

  function hasFilters() { return state.search || state.tag || state.status.length || state.query; }

  /* The listing's parameters, for the API, the CSV export and the URL. */
  function listParams() {
    return {
      experiment: state.experiment, status: state.status, tag: state.tag ? [state.tag] : [], search: state.search,
      q: state.query, sort: state.sort, order: state.order, include_children: state.children ? "true" : "",
      archived: state.archived ? "include" : "",
    };
  }
  function urlState() {
    return { experiment: state.experiment, status: state.status, tag: state.tag, search: state.search, q: state.query,
      sort: state.sort === "created_at" ? "" : state.sort, order: state.order === "desc" ? "" : state.order,
      limit: state.limit === 50 ? "" : state.limit, offset: state.offset || "", metric: state.metric,
      tagcol: state.tagcol, propcol: state.propcol, children: state.children, archived: state.archived };
  }
  function updateExport() {
    const url = new URL("/api/runs-export", location.origin);
    const params = { ...listParams(), metric: state.metric, tag_column: state.tagcol, property_column: state.propcol };
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === "") continue;
      if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, x)); else url.searchParams.set(k, v);
    }
    document.getElementById("export-csv").href = url.pathname + url.search;
  }

  function showQueryError(err) {
    const detail = (err.details || [])[0] || {};
    queryError.replaceChildren(el("span", {}, err.message));
    if (typeof detail.position === "number" && state.query) {
      const at = Math.min(detail.position, state.query.length);
      const len = detail.token ? Math.max(1, String(detail.token).length) : 1;
      queryError.append(el("pre", { class: "query-caret" }, state.query, "\n", " ".repeat(at) + "^".repeat(len)));
    }
    queryError.hidden = false;
    queryBox.classList.add("invalid");
    queryBox.setAttribute("aria-invalid", "true");
  }
  function clearQueryError() {
    queryError.hidden = true;
    queryError.replaceChildren();
    queryBox.classList.remove("invalid");
    queryBox.removeAttribute("aria-invalid");
  }

  /* The API's GET, keeping the error's details (the query's wrong token). */
  async function fetchPage() {
    const url = new URL("/api/runs", location.origin);
    const params = { ...listParams(), limit: state.limit, offset: state.offset, metric: state.metric };
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === "") continue;
      if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, x)); else url.searchParams.set(k, v);
    }
    let response;
    try { response = await fetch(url, { headers: { Accept: "application/json" } }); } catch (e) {
      throw new S.ApiError("the studio server cannot be reached: is `runlab studio` still running?", 0, "NetworkError");
    }
    if (response.status === 401) return api("/api/runs", params);  // the helper sends the browser to log in
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (e) { /* not JSON */ }
      const err = new S.ApiError(body?.error?.message || `${response.status} ${response.statusText}`, response.status,
        body?.error?.type || "HTTPError");
      err.details = body?.error?.details || [];
      throw err;
    }
    return response.json();
  }

  function render(page) {
    rowsShown = page.runs;
    renderHead(page.runs);
    tbody.replaceChildren(...page.runs.map(renderRow));
    if (cursor >= rowsShown.length) cursor = rowsShown.length - 1;
    markCursor();
    renderPager(page);
    document.getElementById("runs-subtitle").textContent = `${page.total.toLocaleString()} run${page.total === 1 ? "" : "s"}` +
      (hasFilters() ? " match the filters" : "");
    if (!page.total) {
      table.hidden = true;
      emptyBox.replaceChildren(hasFilters()
        ? S.emptyState("No runs match these filters", "Clear the search, the query, the status or the tag filter to see every run.")
        : S.emptyState("No runs yet", "Submit one, or log from a notebook or a script:",
          "run = experiment.submit(ScriptRunConfig(source_directory='.', script='train.py'))\n" +
          "# or\nrun = experiment.start_logging()"));
    } else {
      table.hidden = false;
      emptyBox.replaceChildren();
    }
    updateSelection();
  }

  async function load(quiet) {
    const mine = ++request;
    S.setQuery(urlState());
    updateExport();
    if (!quiet) { table.style.opacity = "0.55"; document.body.dataset.ready = "0"; }
    let page;
    try {
      page = await fetchPage();
    } catch (err) {
      if (mine !== request) return;
      table.style.opacity = "1";
      if (err.type === "FilterError") showQueryError(err);
      else if (!quiet) emptyBox.replaceChildren(S.errorNotice(err));
      document.body.dataset.ready = "1";
      return;
    }
    if (mine !== request) return;  // a newer request is on its way
    table.style.opacity = "1";
    clearQueryError();
    render(page);
    document.body.dataset.ready = "1";
    S.markOnce("runlab:runs-table");
  }

  // -- refresh: runs that have not ended, while the tab is visible (one request per interval) ----
  setInterval(() => {
    if (document.hidden || document.body.dataset.ready !== "1") return;
    if (!rowsShown.some((r) => !ENDED.has(r.status))) return;
    if (document.activeElement && thead.contains(document.activeElement)) return;
    load(true);
  }, REFRESH_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && rowsShown.some((r) => !ENDED.has(r.status))) load(true);
  });

  // -- bulk actions ----------------------------------------------------------------------
  const bulkResult = document.getElementById("bulk-result");
  async function bulk(action, extra, confirmText) {
    if (!selected.size) return;
    if (confirmText && !window.confirm(confirmText)) return;
    let result;
    try {
      result = await S.send("POST", "/api/runs-bulk", { action, run_ids: [...selected], ...(extra || {}) });
    } catch (err) { bulkResult.textContent = err.message; return; }
    const failed = Object.entries(result.failed);
    bulkResult.textContent = `${action}: ${result.done.length} done` +
      (failed.length ? `, ${failed.length} not: ${failed.slice(0, 3).map(([id, why]) => `${id}: ${why}`).join("; ")}` : "");
    if (action === "delete") result.done.forEach((id) => selected.delete(id));
    await load();
  }
  document.getElementById("bulk-tag").addEventListener("click", () => {
    const text = window.prompt("Tag the selected runs: key=value (key alone: a tag without a value)");
    if (!text || !text.trim()) return;
    const [key, ...rest] = text.split("=");
    if (!key.trim()) { bulkResult.textContent = "a tag needs a key"; return; }
    bulk("tag", { tags: { [key.trim()]: rest.join("=").trim() } });
  });
  document.getElementById("bulk-cancel").addEventListener("click", () => bulk("cancel", null, `Cancel ${selected.size} run(s)?`));
  document.getElementById("bulk-archive").addEventListener("click", () => bulk("archive"));
  document.getElementById("bulk-unarchive").addEventListener("click", () => bulk("unarchive"));
  document.getElementById("bulk-delete").addEventListener("click", () => bulk("delete", null,
    `Delete ${selected.size} run(s), their child runs, metrics and files? This cannot be undone.`));
  document.getElementById("bulk-clear").addEventListener("click", () => {
    selected.clear();
    tbody.querySelectorAll("input[type=checkbox]").forEach((b) => (b.checked = false));
    thead.querySelectorAll("input[type=checkbox]").forEach((b) => (b.checked = false));
    updateSelection();
  });

  // -- keyboard: j/k move, Enter opens, x selects, c compares ----------------------------
  function markCursor() {
    tbody.querySelectorAll("tr.current").forEach((tr) => tr.classList.remove("current"));
    const tr = cursor >= 0 ? tbody.children[cursor] : null;
    if (tr) { tr.classList.add("current"); tr.scrollIntoView({ block: "nearest" }); }
  }
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    if (ev.key === "j" || ev.key === "k") {
      if (!rowsShown.length) return;
      cursor = ev.key === "j" ? Math.min(rowsShown.length - 1, cursor + 1) : Math.max(0, cursor - 1);
      markCursor();
    } else if (ev.key === "Enter" && cursor >= 0 && rowsShown[cursor] && !(t && ["A", "BUTTON"].includes(t.tagName))) {
      location.href = `/runs/${encodeURIComponent(rowsShown[cursor].run_id)}`;
    } else if (ev.key === "x" && cursor >= 0 && rowsShown[cursor]) {
      const id = rowsShown[cursor].run_id;
      selected.has(id) ? selected.delete(id) : selected.add(id);
      const box = tbody.children[cursor]?.querySelector("input[type=checkbox]");
      if (box) box.checked = selected.has(id);
      updateSelection();
    } else if (ev.key === "c" && selected.size >= 2) {
      location.href = compareUrl();
    } else return;
    ev.preventDefault();
  });

  // -- saved views (in this browser): name -> filter, columns and sort ------------------
  const viewsSelect = document.getElementById("views");
  const readViews = () => { try { return JSON.parse(localStorage.getItem(VIEWS_KEY) || "{}"); } catch (e) { return {}; } };
  function renderViews() {
    const views = readViews();
    viewsSelect.replaceChildren(el("option", { value: "" }, "Saved views"),
      ...Object.keys(views).sort().map((name) => el("option", { value: name }, name)));
  }
  viewsSelect.addEventListener("change", () => {
    const view = readViews()[viewsSelect.value];
    if (view) location.search = view;
  });
  document.getElementById("save-view").addEventListener("click", () => {
    const name = window.prompt("Save this view (filter, columns and sort) as:");
    if (!name || !name.trim()) return;
    const views = readViews();
    const params = new URLSearchParams(location.search);
    params.delete("offset");
    views[name.trim()] = "?" + params.toString();
    localStorage.setItem(VIEWS_KEY, JSON.stringify(views));
    renderViews();
  });
  renderViews();

  // -- start -------------------------------------------------------------------------------
  try {
    // the page carries the column list; a page from an older server asks for it
    columnKeys = S.pageData.columns || await api("/api/runs-columns", { experiment: state.experiment });
  } catch (err) {
    emptyBox.replaceChildren(S.errorNotice(err));
    document.body.dataset.ready = "1";
    return;
  }
  if (!q.has("metric")) {
    // the metrics most runs have, loss first when there is one
    const names = columnKeys.metrics.map((m) => m.name);
    state.metric = [...new Set(names.includes("loss") ? ["loss", ...names] : names)].slice(0, 3);
  }
  // the column a sort names is shown
  const [sortKind, ...sortRest] = state.sort.split(":");
  const sortName = sortRest.join(":");
  const shown = { metric: "metric", tag: "tagcol", property: "propcol" }[sortKind];
  if (shown && sortName && !state[shown].includes(sortName)) state[shown] = [...state[shown], sortName];
  renderColumnPicker();
  await load();
})();
