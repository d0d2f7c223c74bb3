// editor.js: the dashboard's record editor: a new record, or one record's fields as JSON to change
// or delete. The text is sent as typed (numbers digit for digit; jtag.js parseExact).

import { parseExact } from "/jtag.js";
import { loadCollections, openQuery } from "/app.js";
import { $, clearBanner, idText, isForeign, reserved, run, showError, state } from "/page.js";
import { visible } from "/show.js";

export function userFields(record) {
  const skip = reserved();
  return Object.fromEntries(Object.entries(record).filter(([key]) => !skip.has(key)));
}

/** The fields of the edited record that changed: an update sets only those, so the columns no one
 * may set (a table's generated columns, its key) go back only when the user typed a new value into
 * one, and the server then says why it refuses it. */
function changedFields(before, after) {
  return Object.fromEntries(
    Object.entries(after).filter(([key, value]) => !(key in before) || JSON.stringify(before[key]) !== JSON.stringify(value)),
  );
}

export function newRecord() {
  state.editing = null;
  $("editor-title").textContent = "New record";
  $("editor-collection").value = state.collection || "";
  $("editor-collection").disabled = false;
  $("editor-id").value = "";
  $("editor-id").disabled = false;
  $("editor-id-hint").hidden = false;
  $("editor-data").value = JSON.stringify({ text: "example", label: "positive" }, null, 2);
  $("editor-meta").textContent = "";
  $("editor-save").textContent = "Create";
  $("editor-delete").hidden = true;
  openEditor();
}

export function editRecord(record) {
  state.editing = record;
  $("editor-title").textContent = "Edit record";
  $("editor-collection").value = state.collection;
  $("editor-collection").disabled = true;
  $("editor-id").value = visible(idText(record.id));
  $("editor-id").disabled = true;
  $("editor-id-hint").hidden = true;
  $("editor-data").value = JSON.stringify(userFields(record), null, 2);
  // A table dbhandles did not create keeps none of these (its columns of these names are data).
  $("editor-meta").textContent = isForeign() ? "" : [
    record.version != null ? `version ${record.version}` : "",
    record.createdAt ? `created ${record.createdAt}` : "",
    record.updatedAt ? `updated ${record.updatedAt}` : "",
  ].filter(Boolean).join(" · ");
  $("editor-save").textContent = "Save changes";
  $("editor-delete").hidden = false;
  resetDeleteButton();
  openEditor();
}

function openEditor() {
  $("editor").hidden = false;
  validateEditor();
  (state.editing ? $("editor-data") : $("editor-collection").value ? $("editor-data") : $("editor-collection")).focus();
}

export function closeEditor() {
  $("editor").hidden = true;
  state.editing = null;
}

/** Parse the textarea; show why it is not a JSON object. Returns the object or null. */
export function validateEditor() {
  const area = $("editor-data");
  const hint = $("editor-hint");
  let value;
  try {
    // Only to check it: every number stays the text typed (digits, 1.0, -0.0), sent as typed.
    value = parseExact(area.value, { allNumbers: true });
  } catch (err) {
    area.classList.add("invalid");
    hint.className = "hint error";
    hint.textContent = `Not valid JSON: ${err.message}`;
    $("editor-save").disabled = true;
    return null;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    area.classList.add("invalid");
    hint.className = "hint error";
    hint.textContent = "The data must be a JSON object, like {\"text\": \"example\"}";
    $("editor-save").disabled = true;
    return null;
  }
  area.classList.remove("invalid");
  hint.className = "hint ok";
  hint.textContent = state.editing
    ? "Valid JSON. Fields are merged into the record; set a field to null to clear it."
    : "Valid JSON object.";
  $("editor-save").disabled = false;
  return value;
}

export async function saveRecord(event) {
  event.preventDefault();
  clearBanner();
  const data = validateEditor();
  if (!data) return;
  const collection = $("editor-collection").value.trim();
  if (!collection) {
    showError({ code: "invalid_params", error: "enter a collection name, e.g. training_examples" }, "Save");
    return;
  }
  $("editor-save").disabled = true;
  let result;
  if (state.editing) {
    const id = idText(state.editing.id);
    const changes = changedFields(userFields(state.editing), data);
    if (!Object.keys(changes).length) {
      $("editor-save").disabled = false;
      closeEditor();
      return;
    }
    const params = { dbHandle: state.handle, collection, id, data: changes };
    if (!isForeign() && state.editing.version != null) params.expectedVersion = state.editing.version;
    result = await run("data/update", params, `Updating ${id}`);
  } else {
    const params = { dbHandle: state.handle, collection, data };
    const id = $("editor-id").value.trim();
    if (id) params.id = id;
    result = await run("data/create", params, `Creating a record in ${collection}`);
  }
  $("editor-save").disabled = false;
  if (!result) return;
  closeEditor();
  state.collection = collection;
  await loadCollections();
  await openQuery(state.query ? state.query.index : 0, result.id == null ? null : idText(result.id));
}

export async function deleteRecord() {
  const button = $("editor-delete");
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.textContent = "Click again to delete";
    button.classList.add("danger");
    return;
  }
  const id = idText(state.editing.id);
  const result = await run(
    "data/delete",
    { dbHandle: state.handle, collection: state.collection, id },
    `Deleting ${id}`,
  );
  if (!result) return;
  closeEditor();
  await loadCollections();
  await openQuery(state.query ? state.query.index : 0);
}

function resetDeleteButton() {
  const button = $("editor-delete");
  button.dataset.confirm = "";
  button.textContent = "Delete";
  button.classList.remove("danger");
}
