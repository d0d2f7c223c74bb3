// The dbhandles dashboard: handles, collections, a paged record browser and a record editor, built only
// on the browser client (/jtag.js). Every command goes through Commands.execute; live updates come from
// Events.subscribe("data:*"), an import's progress from Events.subscribe("import:*").

import { Commands, Connection, Events } from "/jtag.js";

const PAGE_SIZE = 25;
const RESERVED = new Set(["id", "createdAt", "updatedAt", "version"]);
const MAX_FIELD_COLUMNS = 6;

const state = {
  handles: [],
  handle: "default",
  collections: [],
  collection: null,
  query: null, // {queryHandle, totalCount, pages: [[...]], index, hasMore}
  editing: null, // null (new) or the record being edited
  pendingChanges: 0,
};

const $ = (id) => document.getElementById(id);
const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// -- feedback -------------------------------------------------------------------------------------

function showError(envelope, context) {
  $("banner").classList.remove("info");
  $("banner-code").textContent = envelope.code || "error";
  $("banner-code").hidden = false;
  $("banner-text").textContent = context ? `${context}: ${envelope.error}` : envelope.error;
  $("banner").hidden = false;
}

function showInfo(text) {
  $("banner").classList.add("info");
  $("banner-code").hidden = true;
  $("banner-text").textContent = text;
  $("banner").hidden = false;
}

function clearBanner() {
  $("banner").hidden = true;
}

/** Run a command; on failure show the error in the banner and return null. */
async function run(name, params, context) {
  const result = await Commands.execute(name, params);
  if (!result.success) {
    // Without a (valid) token the token prompt says what to do; a banner would only repeat it.
    if (result.code !== "unauthorized") showError(result, context || name);
    return null;
  }
  return result;
}

// -- handles --------------------------------------------------------------------------------------

function handleLabel(h) {
  if (h.isDefault) return "default";
  if (h.aliases && h.aliases.length) return h.aliases.join(", ");
  return h.handle.slice(0, 8);
}

function handleWhere(h) {
  const config = h.config || {};
  return config.path || config.url || config.dsn || (h.adapter === "memory" ? "in memory" : "");
}

async function loadHandles() {
  const result = await run("data/list-handles", {}, "Loading handles");
  if (!result) return;
  state.handles = result.handles;
  renderHandles();
  renderHandleHead();
  if (!state.handles.some((h) => h.handle === state.handle)) {
    showInfo(`Handle ${state.handle} was closed; showing default`);
    await selectHandle("default");
  }
}

function renderHandles() {
  const list = $("handles");
  list.replaceChildren(
    ...state.handles.map((h) =>
      el(
        "li",
        {
          class: `handle${h.handle === state.handle ? " selected" : ""}`,
          dataset: { handle: h.handle },
          title: h.handle,
          onclick: () => selectHandle(h.handle),
        },
        el("span", { class: "handle-name" }, handleLabel(h)),
        el("span", { class: `badge${h.isDefault ? " default" : ""}` }, h.adapter),
        el("span", { class: "handle-path" }, handleWhere(h)),
      ),
    ),
  );
}

function renderHandleHead() {
  const h = state.handles.find((x) => x.handle === state.handle);
  $("handle-title").textContent = h ? handleLabel(h) : state.handle;
  const mode = h && h.config && h.config.mode ? ` · ${h.config.mode}` : "";
  $("handle-meta").textContent = h ? `${h.adapter} · ${handleWhere(h)}${mode} · ${h.handle}` : "";
  $("close-handle").hidden = !h || h.isDefault;
}

async function selectHandle(handle) {
  if (handle === state.handle && state.collections.length) return;
  state.handle = handle;
  state.collection = null;
  await closeQuery();
  renderHandles();
  renderHandleHead();
  renderRecords();
  await loadCollections();
}

async function openDatabase(event) {
  event.preventDefault();
  clearBanner();
  const adapter = $("open-adapter").value;
  const path = $("open-path").value.trim();
  const alias = $("open-alias").value.trim();
  const params = { adapter, config: adapter === "memory" ? {} : { path, mode: $("open-mode").value } };
  if (adapter !== "memory" && !path) {
    showError({ code: "invalid_params", error: "enter the path of the database file" }, "Open database");
    $("open-path").focus();
    return;
  }
  if (alias) params.alias = alias;
  $("open-submit").disabled = true;
  const result = await run("data/open", params, "Open database");
  $("open-submit").disabled = false;
  if (!result) return;
  $("open-path").value = "";
  $("open-alias").value = "";
  await loadHandles();
  await selectHandle(result.dbHandle);
  showInfo(`Opened ${result.config.path || adapter} as ${result.dbHandle}`);
}

// -- import ---------------------------------------------------------------------------------------

let importing = false;

function showImportProgress(fraction, text) {
  $("import-progress").hidden = false;
  $("import-bar").value = Math.max(0, Math.min(1, fraction));
  $("import-status").textContent = text;
}

/** Start data/import on the server; import:progress events move the bar while it runs. */
async function importJsonl(event) {
  event.preventDefault();
  clearBanner();
  const input = $("import-input").value.trim();
  if (!input) {
    showError({ code: "invalid_params", error: "enter the path of the JSONL file on the server" }, "Import");
    $("import-input").focus();
    return;
  }
  const output = $("import-output").value.trim();
  const collection = $("import-collection").value.trim() || "training_examples";
  const params = { input, collection, onError: $("import-on-error").value };
  const idField = $("import-id-field").value.trim();
  if (idField) params.idField = idField;
  if (output) params.output = output;
  else params.dbHandle = state.handle; // the handle the page shows, named explicitly
  importing = true;
  delete $("import-progress").dataset.done;
  $("import-submit").disabled = true;
  showImportProgress(0, "starting…");
  const result = await run("data/import", params, "Import");
  importing = false;
  $("import-submit").disabled = false;
  if (!result) {
    $("import-progress").hidden = true;
    return;
  }
  const rejected = result.failed ? `, ${plural(result.failed, "line")} set aside in ${result.rejects}` : "";
  showImportProgress(
    1,
    `${plural(result.imported, "record")} imported, ${result.skipped.toLocaleString()} already present${rejected} ` +
      `(${result.seconds}s, ${Math.round(result.recordsPerSecond).toLocaleString()} records/s)`,
  );
  $("import-progress").dataset.done = "true";
  await loadHandles();
  if (result.dbHandle !== state.handle) await selectHandle(result.dbHandle);
  await loadCollections();
  await selectCollection(result.collection);
}

function onImportEvent({ event, payload }) {
  if (event !== "import:progress") logActivity(event, payload); // progress would flood the list
  if (!importing || event !== "import:progress") return;
  const fraction = payload.totalBytes ? payload.bytesRead / payload.totalBytes : 0;
  showImportProgress(
    fraction,
    `${payload.lines.toLocaleString()} lines read, ${payload.imported.toLocaleString()} imported · ` +
      `${Math.round(fraction * 100)}%`,
  );
}

async function closeHandle() {
  const button = $("close-handle");
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.textContent = "Click again to close";
    button.classList.add("danger");
    setTimeout(() => resetCloseButton(), 4000);
    return;
  }
  resetCloseButton();
  const handle = state.handle;
  const result = await run("data/close", { dbHandle: handle }, "Close handle");
  if (!result) return;
  await closeQuery();
  state.handle = "default";
  state.collection = null;
  await loadHandles();
  await loadCollections();
  renderRecords();
  showInfo(`Closed handle ${handle}`);
}

function resetCloseButton() {
  const button = $("close-handle");
  button.dataset.confirm = "";
  button.textContent = "Close handle";
  button.classList.remove("danger");
}

// -- collections ----------------------------------------------------------------------------------

async function loadCollections() {
  const handle = state.handle;
  const result = await run("data/schema", { dbHandle: handle }, "Loading collections");
  if (!result || handle !== state.handle) return;
  state.collections = result.collections || [];
  renderCollections();
  if (!state.collection && state.collections.length) await selectCollection(state.collections[0].name);
}

function renderCollections(pulse) {
  const total = state.collections.reduce((sum, c) => sum + (c.recordCount ?? 0), 0);
  $("collections-summary").textContent = state.collections.length
    ? `${plural(state.collections.length, "collection")} · ${plural(total, "record")}`
    : "no collections yet";
  $("collections").replaceChildren(
    ...state.collections.map((c) =>
      el(
        "button",
        {
          class: `chip${c.name === state.collection ? " selected" : ""}${c.name === pulse ? " pulse" : ""}`,
          dataset: { collection: c.name },
          onclick: () => selectCollection(c.name),
          // Tables and views dbhandles did not create: their kind, key and columns on hover.
          title: c.kind && c.kind !== "collection" ? tableSummary(c) : "",
        },
        c.name,
        c.kind && c.kind !== "collection" ? el("span", { class: "kind" }, c.kind) : "",
        el("span", { class: "count" }, c.recordCount == null ? "–" : c.recordCount.toLocaleString()),
      ),
    ),
  );
}

function tableSummary(t) {
  const columns = (t.columns || []).map((c) => `${c.name} ${c.type || "ANY"}${c.nullable ? "" : " NOT NULL"}`);
  const lines = [`${t.kind}; id: ${t.id}`, ...columns];
  if (t.readOnly) lines.push(`read-only: ${t.readOnly}`);
  if (t.refused) lines.push(t.refused);
  return lines.join("\n");
}

async function selectCollection(name) {
  state.collection = name;
  renderCollections();
  await openQuery();
}

// -- records (query-open / next / close) ----------------------------------------------------------

async function closeQuery() {
  const query = state.query;
  state.query = null;
  if (query) await Commands.execute("data/query-close", { queryHandle: query.queryHandle });
}

async function openQuery(keepIndex = 0, flashId = null) {
  await closeQuery();
  state.pendingChanges = 0;
  $("live-notice").hidden = true;
  if (!state.collection) return renderRecords();
  const handle = state.handle;
  const collection = state.collection;
  const opened = await run(
    "data/query-open",
    { dbHandle: handle, collection, pageSize: PAGE_SIZE, orderBy: [{ field: "createdAt", direction: "desc" }] },
    `Opening ${collection}`,
  );
  if (!opened || handle !== state.handle || collection !== state.collection) return;
  state.query = { queryHandle: opened.queryHandle, totalCount: opened.totalCount, pages: [], index: 0, hasMore: true };
  while (state.query && state.query.pages.length <= keepIndex && state.query.hasMore) {
    if (!(await fetchNextPage())) break;
  }
  if (state.query) state.query.index = Math.min(keepIndex, Math.max(0, state.query.pages.length - 1));
  renderRecords(flashId);
}

async function fetchNextPage() {
  const query = state.query;
  const page = await run("data/query-next", { queryHandle: query.queryHandle }, "Next page");
  if (!page || state.query !== query) return false;
  if (page.items.length || !query.pages.length) query.pages.push(page.items);
  query.hasMore = page.hasMore;
  return page.items.length > 0;
}

async function nextPage() {
  const query = state.query;
  if (!query) return;
  if (query.index + 1 >= query.pages.length) {
    if (!query.hasMore || !(await fetchNextPage())) return renderRecords();
  }
  query.index += 1;
  renderRecords();
}

function previousPage() {
  if (state.query && state.query.index > 0) {
    state.query.index -= 1;
    renderRecords();
  }
}

function columnsFor(items) {
  const fields = [];
  for (const item of items) {
    for (const key of Object.keys(item)) {
      if (!RESERVED.has(key) && !fields.includes(key)) fields.push(key);
    }
  }
  return ["id", ...fields.slice(0, MAX_FIELD_COLUMNS), "version", "updatedAt"];
}

function cell(key, value) {
  if (value === null || value === undefined) return el("td", { class: "null" }, "—");
  if (key === "updatedAt" || key === "createdAt") {
    const date = new Date(value);
    return el("td", { class: "mono", title: value }, isNaN(date) ? value : date.toLocaleString());
  }
  if (typeof value === "number") return el("td", { class: "num" }, value.toLocaleString());
  if (typeof value === "object") return el("td", { class: "mono", title: JSON.stringify(value) }, JSON.stringify(value));
  return el("td", { class: key === "id" ? "mono" : "", title: String(value) }, String(value));
}

function renderRecords(flashId = null) {
  const query = state.query;
  const items = query && query.pages.length ? query.pages[query.index] || [] : [];
  $("records-title").textContent = state.collection || "Records";
  const table = $("records-table");
  if (!items.length) {
    table.hidden = true;
    $("records-empty").hidden = false;
    $("records-empty").textContent = state.collection
      ? `No records in ${state.collection} yet. Use “New record” to add one.`
      : "Pick a collection, or create a record to start one.";
  } else {
    const columns = columnsFor(items);
    table.hidden = false;
    $("records-empty").hidden = true;
    table.tHead.replaceChildren(el("tr", {}, ...columns.map((c) => el("th", {}, c))));
    table.tBodies[0].replaceChildren(
      ...items.map((item) =>
        el(
          "tr",
          { dataset: { id: idText(item.id) }, class: idText(item.id) === flashId ? "flash" : "", onclick: () => editRecord(item) },
          ...columns.map((c) => cell(c, item[c])),
        ),
      ),
    );
  }
  const total = query ? query.totalCount : 0;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  $("records-summary").textContent = state.collection ? plural(total, "record") : "";
  $("page-info").textContent = query ? `Page ${query.index + 1} of ${pages}` : "";
  $("prev-page").disabled = !query || query.index === 0;
  $("next-page").disabled = !query || (query.index + 1 >= query.pages.length && !query.hasMore);
}

// -- the editor -----------------------------------------------------------------------------------

function userFields(record) {
  return Object.fromEntries(Object.entries(record).filter(([key]) => !RESERVED.has(key)));
}

/** A record's id as the text every command takes: the key of a table dbhandles did not create may
 * be a number in records (3 is "3", 2.5 is "2.5"; docs/foreign-tables.md). */
function idText(id) {
  return typeof id === "string" ? id : String(id);
}

/** The fields of the edited record that changed: an update sets only those, so the columns no one
 * may set (a table's generated columns, its key) go back only when the user typed a new value into
 * one, and the server then says why it refuses it. */
function changedFields(before, after) {
  return Object.fromEntries(
    Object.entries(after).filter(([key, value]) => !(key in before) || JSON.stringify(before[key]) !== JSON.stringify(value)),
  );
}

function newRecord() {
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

function editRecord(record) {
  state.editing = record;
  $("editor-title").textContent = "Edit record";
  $("editor-collection").value = state.collection;
  $("editor-collection").disabled = true;
  $("editor-id").value = idText(record.id);
  $("editor-id").disabled = true;
  $("editor-id-hint").hidden = true;
  $("editor-data").value = JSON.stringify(userFields(record), null, 2);
  // A table dbhandles did not create may keep none of these.
  $("editor-meta").textContent = [
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

function closeEditor() {
  $("editor").hidden = true;
  state.editing = null;
}

/** Parse the textarea; show why it is not a JSON object. Returns the object or null. */
function validateEditor() {
  const area = $("editor-data");
  const hint = $("editor-hint");
  let value;
  try {
    value = JSON.parse(area.value);
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

async function saveRecord(event) {
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
    if (state.editing.version != null) params.expectedVersion = state.editing.version;
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
  await openQuery(state.query ? state.query.index : 0, result.id);
}

async function deleteRecord() {
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

// -- live updates ---------------------------------------------------------------------------------

let refreshTimer = null;
let flashId = null;

function onEvent({ event, payload }) {
  logActivity(event, payload);
  if (payload.dbHandle !== state.handle) return;
  const collection = payload.collection;
  if (event.endsWith(":created") || event.endsWith(":updated")) flashId = payload.id;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    const handle = state.handle;
    const result = await Commands.execute("data/schema", { dbHandle: handle });
    if (result.success && handle === state.handle) {
      const hadCollection = state.collection;
      state.collections = result.collections || [];
      renderCollections(collection);
      if (!hadCollection && state.collections.length) return selectCollection(collection || state.collections[0].name);
    }
    const affectsView = collection === state.collection || event === "data:*:cleared";
    if (!affectsView) return;
    if (!state.query || state.query.index === 0) {
      await openQuery(0, flashId);
    } else {
      state.pendingChanges += 1;
      $("live-notice").textContent = `${state.pendingChanges} new change${state.pendingChanges === 1 ? "" : "s"}, reload`;
      $("live-notice").hidden = false;
    }
    flashId = null;
  }, 150);
}

function logActivity(event, payload) {
  const op = event.split(":").pop();
  const who = state.handles.find((h) => h.handle === payload.dbHandle);
  const list = $("activity");
  list.prepend(
    el(
      "li",
      {},
      el("time", {}, new Date().toLocaleTimeString()),
      el("span", { class: `ev ev-${op}` }, event),
      el("span", { class: "muted" }, `${payload.id ? `id ${payload.id} · ` : ""}on ${who ? handleLabel(who) : payload.dbHandle}`),
    ),
  );
  while (list.children.length > 50) list.lastChild.remove();
}

function renderStatus(status, detail) {
  const node = $("status");
  node.className = `status status-${status}`;
  node.title = "WebSocket connection";
  if (status === "unauthorized") {
    node.textContent = "token needed";
    showTokenPrompt(
      Connection.hasToken ? `The server refused this token: ${detail?.error || "it is wrong, expired or revoked"}.` : null,
    );
  } else if (status === "open") {
    node.textContent = "live";
    if (detail?.actor) node.title = `connected as ${detail.actor}`;
    hideTokenPrompt();
  } else if (status === "closed") node.textContent = `reconnecting in ${Math.round((detail?.retryIn || 0) / 100) / 10}s…`;
  else node.textContent = "connecting…";
  $("forget-token").hidden = !storedToken();
}

// -- the token ------------------------------------------------------------------------------------

const TOKEN_KEY = "dbhandles.token";

/** The token of this tab (sessionStorage: it goes when the tab closes, and no other tab sees it). */
function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function showTokenPrompt(error) {
  clearBanner();
  $("token-error").textContent = error || "";
  $("token-error").hidden = !error;
  const wasHidden = $("token-prompt").hidden;
  $("token-prompt").hidden = false;
  if (wasHidden) $("token-input").focus();
}

function hideTokenPrompt() {
  $("token-prompt").hidden = true;
  $("token-error").hidden = true;
}

function useToken(event) {
  event.preventDefault();
  const token = $("token-input").value.trim();
  if (!token) {
    showTokenPrompt("Paste a token first.");
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token-input").value = "";
  $("token-error").hidden = true;
  Connection.configure({ token });
}

/** Forget this tab's token: nothing stays on screen, and the server asks for a token again. */
function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.handles = [];
  state.collections = [];
  state.collection = null;
  state.query = null;
  state.handle = "default";
  renderHandles();
  renderHandleHead();
  renderCollections();
  renderRecords();
  $("activity").replaceChildren();
  Connection.configure({});
}

// -- start ----------------------------------------------------------------------------------------

function wire() {
  $("open-form").addEventListener("submit", openDatabase);
  $("import-form").addEventListener("submit", importJsonl);
  $("open-adapter").addEventListener("change", () => {
    const memory = $("open-adapter").value === "memory";
    for (const node of document.querySelectorAll(".needs-path")) node.hidden = memory;
  });
  $("refresh-handles").addEventListener("click", loadHandles);
  $("close-handle").addEventListener("click", closeHandle);
  $("banner-close").addEventListener("click", clearBanner);
  $("new-record").addEventListener("click", newRecord);
  $("refresh-records").addEventListener("click", async () => {
    await loadCollections();
    await openQuery(state.query ? state.query.index : 0);
  });
  $("live-notice").addEventListener("click", () => openQuery(0));
  $("prev-page").addEventListener("click", previousPage);
  $("next-page").addEventListener("click", nextPage);
  $("editor-form").addEventListener("submit", saveRecord);
  $("editor-cancel").addEventListener("click", closeEditor);
  $("editor-delete").addEventListener("click", deleteRecord);
  $("editor-data").addEventListener("input", validateEditor);
  $("token-form").addEventListener("submit", useToken);
  $("forget-token").addEventListener("click", forgetToken);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("editor").hidden) closeEditor();
  });
}

let started = false;

/** A token in the address (`#token=...`, as printed by `jtag serve` when it creates the admin token)
 * is kept for this tab only and removed from the address bar so it is not shared by copy-paste.
 * It never silently replaces the token the tab already has: a link from elsewhere could otherwise
 * switch the tab to an identity its user did not choose (and show them that actor's data as theirs),
 * so the user is asked first. */
function tokenFromAddress() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    history.replaceState(null, "", location.pathname + location.search);
    let given = null;
    try {
      given = decodeURIComponent(match[1]);
    } catch {
      given = null;
    }
    const current = storedToken();
    const replace =
      given &&
      given !== current &&
      (!current ||
        window.confirm(
          "This address carries a token for another identity. Replace the token this tab uses " +
            "with it? (Cancel keeps the current one.)",
        ));
    if (replace) sessionStorage.setItem(TOKEN_KEY, given);
  }
  return storedToken();
}

async function start() {
  wire();
  Connection.configure({ token: tokenFromAddress() || undefined });
  Connection.onStatus((status, detail) => {
    renderStatus(status, detail);
    // After a reconnect, reload what the page shows: writes may have happened while it was away,
    // and the cursor belonged to the old connection's session (the server closed it).
    if (status === "open" && detail && detail.sessionId && started) {
      const index = state.query ? state.query.index : 0;
      state.query = null;
      loadHandles()
        .then(loadCollections)
        .then(() => openQuery(index));
    }
  });
  Events.subscribe("data:*", onEvent);
  Events.subscribe("import:*", onImportEvent);
  await loadHandles();
  await loadCollections();
  renderRecords();
  started = true;
  setInterval(loadHandles, 15000);
  document.body.dataset.ready = "true";
}

start();
