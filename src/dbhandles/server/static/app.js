// The dbhandles dashboard: handles, collections, a paged record browser and a record editor, built only
// on the browser client (/jtag.js). Every command goes through Commands.execute; live updates come from
// Events.subscribe("data:*"), an import's progress from Events.subscribe("import:*").

import { closeEditor, deleteRecord, editRecord, newRecord, saveRecord, validateEditor } from "/editor.js";
import { Commands, Connection, Events } from "/jtag.js";
import {
  $, clearBanner, el, idText, isForeign, plural, reserved, run, showError, showInfo, state,
} from "/page.js";
import { cellText, visible } from "/show.js";
import { TOKEN_KEY, storedToken, takeTokenFromAddress } from "/token.js";

const PAGE_SIZE = 25;
const MAX_FIELD_COLUMNS = 6;

// -- handles --------------------------------------------------------------------------------------

function handleLabel(h) {
  if (h.isDefault) return "default";
  if (h.aliases && h.aliases.length) return visible(h.aliases.join(", "));
  return h.handle.slice(0, 8);
}

function handleWhere(h) {
  const config = h.config || {};
  return visible(config.path || config.url || config.dsn || (h.adapter === "memory" ? "in memory" : ""));
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

export async function loadCollections() {
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
        visible(c.name),
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
  return visible(lines.join("\n")).replaceAll("\\x0a", "\n");
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

export async function openQuery(keepIndex = 0, flashId = null) {
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
  const skip = reserved();
  for (const item of items) {
    for (const key of Object.keys(item)) {
      if (!skip.has(key) && !fields.includes(key)) fields.push(key);
    }
  }
  if (isForeign()) return ["id", ...fields.slice(0, MAX_FIELD_COLUMNS)];
  return ["id", ...fields.slice(0, MAX_FIELD_COLUMNS), "version", "updatedAt"];
}

/** A grid cell: numbers as their exact JSON text, strings that look like another type quoted,
 * invisible and direction characters escaped (show.js). */
function cell(key, value, metadata) {
  if (metadata && (key === "updatedAt" || key === "createdAt") && typeof value === "string") {
    const date = new Date(value);
    return el("td", { class: "mono", title: visible(value) }, isNaN(date) ? visible(value) : date.toLocaleString());
  }
  const { text, kind } = cellText(value);
  const cls = { num: "num", null: "null", json: "mono", text: key === "id" ? "mono" : "" }[kind];
  return el("td", { class: cls, title: text }, text);
}

function renderRecords(flashId = null) {
  const query = state.query;
  const items = query && query.pages.length ? query.pages[query.index] || [] : [];
  $("records-title").textContent = state.collection ? visible(state.collection) : "Records";
  const table = $("records-table");
  if (!items.length) {
    table.hidden = true;
    table.tHead.replaceChildren(); // hidden is not gone: no earlier rows stay in the page
    table.tBodies[0].replaceChildren();
    $("records-empty").hidden = false;
    $("records-empty").textContent = state.collection
      ? `No records in ${visible(state.collection)} yet. Use “New record” to add one.`
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
          ...columns.map((c) => cell(c, item[c], !isForeign())),
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

// -- live updates ---------------------------------------------------------------------------------

let refreshTimer = null;
let flashId = null;

function onEvent({ event, payload }) {
  logActivity(event, payload);
  if (payload.dbHandle !== state.handle) return;
  const collection = payload.collection;
  if ((event.endsWith(":created") || event.endsWith(":updated")) && payload.id != null) flashId = idText(payload.id);
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
      el("span", { class: `ev ev-${op}` }, visible(event)),
      el(
        "span",
        { class: "muted" },
        `${payload.id != null ? `id ${visible(idText(payload.id))} · ` : ""}on ${who ? handleLabel(who) : visible(payload.dbHandle)}`,
      ),
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

/** Take every record, collection, handle and message of the current actor off the screen and out
 * of the page's state (the editor's text too), before the token goes or changes. */
function clearData() {
  closeEditor();
  for (const id of ["editor-data", "editor-id", "editor-collection", "import-input", "import-output"]) $(id).value = "";
  for (const id of ["editor-meta", "editor-hint", "import-status", "live-notice"]) $(id).textContent = "";
  $("live-notice").hidden = true;
  $("import-progress").hidden = true;
  clearBanner();
  closeQuery(); // drops state.query at once; the old connection's cursor is closed in the background
  Object.assign(state, { handles: [], collections: [], collection: null, handle: "default", pendingChanges: 0 });
  renderHandles();
  renderHandleHead();
  renderCollections();
  renderRecords();
  $("activity").replaceChildren();
}

/** Forget this tab's token: nothing stays on screen, and the server asks for a token again. */
function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  clearData();
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

/** A `#token=` put in the address after the page loaded: asked about the same way; once accepted,
 * nothing of the previous actor stays on screen. */
async function onHashChange() {
  const offered = await takeTokenFromAddress();
  if (!offered) return;
  sessionStorage.setItem(TOKEN_KEY, offered);
  clearData();
  Connection.configure({ token: offered });
}

async function start() {
  wire();
  const offered = await takeTokenFromAddress();
  if (offered) sessionStorage.setItem(TOKEN_KEY, offered);
  window.addEventListener("hashchange", onHashChange);
  Connection.configure({ token: storedToken() || undefined });
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
