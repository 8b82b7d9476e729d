/* Runs table: sort by any column or a metric's last value, filter by status and tag, search,
   paginate on the server (fast with tens of thousands of runs), select runs to compare. */
"use strict";
(async function () {
  const S = window.Studio;
  const { api, el } = S;
  const STATUSES = ["Queued", "Preparing", "Running", "Finalizing", "Completed", "Failed", "Canceled"];
  const DESC_FIRST = new Set(["created_at", "duration", "started_at", "ended_at"]);

  const q = new URLSearchParams(location.search);
  const state = {
    experiment: q.get("experiment") || "",
    status: q.getAll("status"),
    tag: q.get("tag") || "",
    search: q.get("search") || "",
    sort: q.get("sort") || "created_at",
    order: q.get("order") || "desc",
    limit: Number(q.get("limit")) || 50,
    offset: Number(q.get("offset")) || 0,
    metric: q.getAll("metric"),
    children: q.get("children") === "1",
  };
  const selected = new Set();
  let metricNames = [];
  let request = 0;
  let focusedSort = null;  // the sort header the keyboard was on, focused again after the redraw

  const table = document.getElementById("runs-table");
  const thead = table.querySelector("thead"), tbody = table.querySelector("tbody");
  const emptyBox = document.getElementById("runs-empty"), pager = document.getElementById("pager");
  const compareButton = document.getElementById("compare-button");

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

  compareButton.addEventListener("click", () => {
    location.href = "/compare?runs=" + [...selected].map(encodeURIComponent).join(",");
  });
  const updateCompare = () => {
    compareButton.disabled = selected.size < 2;
    compareButton.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
  };

  function renderColumnPicker() {
    const body = document.getElementById("columns-body");
    if (!metricNames.length) { body.replaceChildren(el("p", { class: "muted" }, "No metrics logged yet.")); return; }
    body.replaceChildren(...metricNames.map((name) => {
      const box = el("input", { type: "checkbox", value: name });
      box.checked = state.metric.includes(name);
      box.addEventListener("change", () => {
        state.metric = box.checked ? [...state.metric, name] : state.metric.filter((m) => m !== name);
        if (!box.checked && state.sort === `metric:${name}`) { state.sort = "created_at"; state.order = "desc"; }
        load();
      });
      return el("label", {}, box, name);
    }));
  }

  // -- table -----------------------------------------------------------------------------
  function columns() {
    const cols = [
      { key: "run", label: "Run", sort: "run_id" },
      state.experiment ? null : { key: "experiment", label: "Experiment", sort: "experiment" },
      { key: "status", label: "Status", sort: "status" },
      { key: "created", label: "Created", sort: "created_at" },
      { key: "duration", label: "Duration", sort: "duration", num: true },
      { key: "target", label: "Compute", sort: "target" },
      { key: "user", label: "User" },
      ...state.metric.map((m) => ({ key: `metric:${m}`, label: m, sort: `metric:${m}`, num: true, metric: m })),
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
      updateCompare();
    });
    // A sortable header is a button: reached with Tab, sorted with Enter or Space (its click
    // bubbles to the header, which a mouse may click anywhere), and focused again once redrawn.
    thead.replaceChildren(el("tr", {}, el("th", { class: "sel" }, all), columns().map((c) => {
      if (!c.sort) return el("th", { class: c.num ? "num" : null }, c.label);
      const sorted = state.sort === c.sort;
      const button = el("button", { type: "button", class: "sort", title: `sort by ${c.label}` }, c.label,
        sorted ? el("span", { class: "arrow", "aria-hidden": "true" }, state.order === "desc" ? "▼" : "▲") : null);
      const th = el("th", { class: c.num ? "num" : null, dataset: { sort: c.sort },
        "aria-sort": sorted ? (state.order === "desc" ? "descending" : "ascending") : "none" }, button);
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

  function renderRow(run) {
    const box = el("input", { type: "checkbox", "aria-label": `select ${run.run_id}` });
    box.checked = selected.has(run.run_id);
    box.addEventListener("change", () => { box.checked ? selected.add(run.run_id) : selected.delete(run.run_id); updateCompare(); });
    const cells = columns().map((c) => {
      switch (c.key) {
        case "run": return el("td", {}, S.runLink(run));
        case "experiment": return el("td", {}, el("a", { href: `/runs?experiment=${encodeURIComponent(run.experiment)}` }, run.experiment));
        case "status": return el("td", { title: run.error_message || "" }, S.statusBadge(run.status));
        case "created": return el("td", {}, S.timeEl(run.created_at));
        case "duration": return el("td", { class: "num" }, S.fmtDuration(run.duration_s));
        case "target": return el("td", {}, run.target);
        case "user": return el("td", { class: "muted" }, run.user || "");
        case "tags": return el("td", { class: "tags" }, S.tagChips(run.tags));
        default: return el("td", { class: "num", dataset: { metric: c.metric } }, S.fmtValue(run.metrics[c.metric]));
      }
    });
    return el("tr", { dataset: { runId: run.run_id } }, el("td", { class: "sel" }, box), cells);
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

  function hasFilters() { return state.search || state.tag || state.status.length; }

  async function load() {
    const mine = ++request;
    S.setQuery({ experiment: state.experiment, status: state.status, tag: state.tag, search: state.search,
      sort: state.sort === "created_at" ? "" : state.sort, order: state.order === "desc" ? "" : state.order,
      limit: state.limit === 50 ? "" : state.limit, offset: state.offset || "", metric: state.metric, children: state.children });
    table.style.opacity = "0.55";
    document.body.dataset.ready = "0";
    let page;
    try {
      page = await api("/api/runs", {
        experiment: state.experiment, status: state.status, tag: state.tag ? [state.tag] : [], search: state.search,
        sort: state.sort, order: state.order, limit: state.limit, offset: state.offset, metric: state.metric,
        include_children: state.children ? "true" : "",
      });
    } catch (err) {
      if (mine !== request) return;
      table.style.opacity = "1";
      emptyBox.replaceChildren(S.errorNotice(err));
      document.body.dataset.ready = "1";
      return;
    }
    if (mine !== request) return;  // a newer request is on its way
    table.style.opacity = "1";
    renderHead(page.runs);
    tbody.replaceChildren(...page.runs.map(renderRow));
    renderPager(page);
    document.getElementById("runs-subtitle").textContent = `${page.total.toLocaleString()} run${page.total === 1 ? "" : "s"}` +
      (hasFilters() ? " match the filters" : "");
    if (!page.total) {
      table.hidden = true;
      emptyBox.replaceChildren(hasFilters()
        ? S.emptyState("No runs match these filters", "Clear the search, the status or the tag filter to see every run.")
        : S.emptyState("No runs yet", "Submit one, or log from a notebook or a script:",
          "run = experiment.submit(ScriptRunConfig(source_directory='.', script='train.py'))\n" +
          "# or\nrun = experiment.start_logging()"));
    } else {
      table.hidden = false;
      emptyBox.replaceChildren();
    }
    updateCompare();
    document.body.dataset.ready = "1";
  }

  try {
    metricNames = await api("/api/metric-names", { experiment: state.experiment });
  } catch (err) {
    emptyBox.replaceChildren(S.errorNotice(err));
    return;
  }
  if (!q.has("metric") && !q.has("sort")) state.metric = metricNames.slice(0, 3);
  renderColumnPicker();
  await load();
})();
