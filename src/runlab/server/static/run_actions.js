/* The run page's write actions: edit the display name, description and tags; add a note; cancel a
   run that has not ended; archive or unarchive; delete (after a confirmation). Each is a call of the
   API (api/runs.py) through Studio.send, which sends the session's CSRF token. Deferred (it runs
   after run.js) and started once the document's scripts have all run; the run's record is
   run.js's (window.RunPage: carried by the page, redrawn from what each write answers). */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const S = window.Studio;
  if (!S || !S.pageData.run_id) return;
  const { el } = S;
  const runId = S.pageData.run_id;
  const base = `/api/runs/${encodeURIComponent(runId)}`;
  const ENDED = new Set(["Completed", "Failed", "Canceled"]);
  let run = null;

  const message = el("span", { class: "action-message muted", id: "run-action-message", role: "status" });
  const editButton = el("button", { class: "button small", type: "button", id: "run-edit-button" }, "Edit");
  const cancelButton = el("button", { class: "button small", type: "button", id: "run-cancel", hidden: true }, "Cancel run");
  const archiveButton = el("button", { class: "button small", type: "button", id: "run-archive" }, "Archive");
  const deleteButton = el("button", { class: "button small danger", type: "button", id: "run-delete" }, "Delete…");
  const bar = el("div", { class: "run-write-bar actions", id: "run-write" }, editButton, cancelButton, archiveButton,
    deleteButton, message);
  document.querySelector(".page-head")?.after(bar);

  // -- edit panel --------------------------------------------------------------------------
  const nameInput = el("input", { type: "text", class: "input", id: "edit-name", maxlength: 255, "aria-label": "display name" });
  const descInput = el("textarea", { class: "input", id: "edit-description", rows: 3, "aria-label": "description" });
  const saveButton = el("button", { class: "button small primary", type: "button", id: "edit-save" }, "Save name and description");
  const tagList = el("div", { id: "edit-tags" });
  const tagKey = el("input", { type: "text", class: "input small", id: "tag-key", placeholder: "key", "aria-label": "tag key" });
  const tagVal = el("input", { type: "text", class: "input small", id: "tag-value", placeholder: "value", "aria-label": "tag value" });
  const tagAdd = el("button", { class: "button small", type: "button", id: "tag-add" }, "Set tag");
  const panel = el("section", { class: "panel card run-edit", id: "run-edit", hidden: true },
    el("h2", {}, "Edit run"),
    el("label", {}, "Display name", nameInput), el("label", {}, "Description", descInput),
    el("div", { class: "row" }, saveButton),
    el("h3", {}, "Tags"), tagList,
    el("div", { class: "row" }, tagKey, tagVal, tagAdd));
  bar.after(panel);

  // -- notes card --------------------------------------------------------------------------
  const notesList = el("ul", { class: "notes-list", id: "notes" });
  const noteText = el("textarea", { class: "input", id: "note-text", rows: 2, placeholder: "Add a note", "aria-label": "note" });
  const noteAdd = el("button", { class: "button small", type: "button", id: "note-add" }, "Add note");
  const notesCard = el("div", { class: "panel card span2 run-edit", id: "notes-card" }, el("h2", {}, "Notes"), notesList,
    el("div", { class: "row" }, noteText, noteAdd));
  document.querySelector("#tab-overview .cards")?.append(notesCard);

  const say = (text) => { message.textContent = text; };
  async function act(fn) {
    try { return await fn(); } catch (err) { say(err.message); return null; }
  }

  function renderTags() {
    tagList.replaceChildren(...Object.entries(run.tags || {}).map(([k, v]) => {
      const remove = el("button", { class: "button small", type: "button", title: `remove tag ${k}`, dataset: { removeTag: k } }, "×");
      remove.addEventListener("click", () => act(async () => { apply(await S.send("PATCH", base, { remove_tags: [k] })); say(`tag ${k} removed`); }));
      return el("span", { class: "tag-edit", dataset: { tag: k } }, S.tagChips({ [k]: v }), remove);
    }));
  }

  /* What a write answered: the page (run.js) redraws from it, header, Details and Tags too, and
     tells show() below. */
  const apply = (details) => window.RunPage.update(details);

  /* this script's parts for the run as it is now */
  function show(details) {
    const before = run;
    run = details;
    // what is being typed stays while a live run's status moves on: the fields follow the record's own changes
    if (!before || before.display_name !== run.display_name) nameInput.value = run.display_name || "";
    if (!before || before.description !== run.description) descInput.value = run.description || "";
    renderTags();
    const active = !ENDED.has(run.status);
    cancelButton.hidden = !active;
    deleteButton.disabled = active;
    deleteButton.title = active ? "cancel the run first: a run that has not ended is not deleted" : "";
    archiveButton.textContent = run.archived ? "Unarchive" : "Archive";
  }

  function renderNotes(notes) {
    notesList.replaceChildren(...(notes.length ? notes.map((n) => el("li", { dataset: { noteId: n.note_id } }, n.text,
      el("span", { class: "when", title: S.fmtTime(n.created_at) }, `— ${n.author || "someone"}, ${S.fmtAgo(n.created_at)}`)))
      : [el("li", { class: "muted" }, "No notes yet.")]));
  }

  editButton.addEventListener("click", () => { panel.hidden = !panel.hidden; if (!panel.hidden) nameInput.focus(); });
  saveButton.addEventListener("click", () => act(async () => {
    apply(await S.send("PATCH", base, { display_name: nameInput.value, description: descInput.value }));
    say("saved");
  }));
  const setTag = () => act(async () => {
    const key = tagKey.value.trim();
    if (!key) { say("a tag needs a key"); return; }
    apply(await S.send("PATCH", base, { add_tags: { [key]: tagVal.value } }));
    tagKey.value = ""; tagVal.value = "";
    say(`tag ${key} set`);
  });
  tagAdd.addEventListener("click", setTag);
  tagVal.addEventListener("keydown", (ev) => { if (ev.key === "Enter") setTag(); });
  noteAdd.addEventListener("click", () => act(async () => {
    if (!noteText.value.trim()) { say("a note needs some text"); return; }
    await S.send("POST", `${base}/notes`, { text: noteText.value });
    noteText.value = "";
    renderNotes(await S.api(`${base}/notes`));
    say("note added");
  }));
  cancelButton.addEventListener("click", () => act(async () => {
    if (!window.confirm(`Cancel run ${runId}?`)) return;
    apply(await S.send("POST", `${base}/cancel`));
    say(run.status === "CancelRequested" ? "cancel requested: the run's agent stops it" : "canceled");
  }));
  archiveButton.addEventListener("click", () => act(async () => {
    apply(await S.send("POST", `${base}/archive`, { archived: !run.archived }));
    say(run.archived ? "archived: hidden from run lists unless they show archived runs" : "unarchived");
  }));
  deleteButton.addEventListener("click", () => act(async () => {
    if (!window.confirm(`Delete run ${runId}, its child runs, metrics and files? This cannot be undone.`)) return;
    await S.send("DELETE", base);
    location.href = `/runs?experiment=${encodeURIComponent(run.experiment)}`;
  }));

  // the run's record is run.js's (one GET /api/runs/ID for the page): shown once it has it, and after each change
  if (!window.RunPage) { say("the run page's script (run.js) did not load"); return; }
  window.RunPage.onChange(show);
  act(async () => {
    const [details, notes] = await Promise.all([window.RunPage.ready, S.api(`${base}/notes`)]);
    show(details);
    renderNotes(notes);
    bar.dataset.ready = "1";
  });
});
