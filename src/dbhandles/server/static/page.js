// page.js: what the dashboard's modules share: the page state, DOM helpers, the error banner and
// how a command is run, and which fields of a record are its metadata.

import { Commands } from "/jtag.js";
import { isExact, visible } from "/show.js";

// A plain collection's metadata; a foreign table's columns of these names are data (only its key is kept apart).
const RESERVED = new Set(["id", "createdAt", "updatedAt", "version"]);
const FOREIGN_RESERVED = new Set(["id"]);

export const state = {
  handles: [],
  handle: "default",
  collections: [],
  collection: null,
  query: null, // {queryHandle, totalCount, pages: [[...]], index, hasMore}
  editing: null, // null (new) or the record being edited
  pendingChanges: 0,
};

export const $ = (id) => document.getElementById(id);
export const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;

export function el(tag, props = {}, ...children) {
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

export function showError(envelope, context) {
  $("banner").classList.remove("info");
  $("banner-code").textContent = envelope.code || "error";
  $("banner-code").hidden = false;
  // An error message may quote a record id or field name: shown escaped, like every value.
  $("banner-text").textContent = visible(context ? `${context}: ${envelope.error}` : envelope.error);
  $("banner").hidden = false;
}

export function showInfo(text) {
  $("banner").classList.add("info");
  $("banner-code").hidden = true;
  $("banner-text").textContent = visible(text);
  $("banner").hidden = false;
}

export function clearBanner() {
  $("banner").hidden = true;
}

/** Run a command; on failure show the error in the banner and return null. */
export async function run(name, params, context) {
  const result = await Commands.execute(name, params);
  if (!result.success) {
    // Without a (valid) token the token prompt says what to do; a banner would only repeat it.
    if (result.code !== "unauthorized") showError(result, context || name);
    return null;
  }
  return result;
}

/** True when the shown collection is a table or view dbhandles did not create (data/schema's `kind`):
 * its createdAt/version columns, if any, are data, not record metadata. */
export function isForeign() {
  const c = state.collections.find((x) => x.name === state.collection);
  return Boolean(c && c.kind && c.kind !== "collection");
}

export const reserved = () => (isForeign() ? FOREIGN_RESERVED : RESERVED);

/** A record's id as the text every command takes: the key of a table dbhandles did not create may
 * be a number in records (3 is "3", 2.5 is "2.5"; docs/foreign-tables.md). */
export function idText(id) {
  if (isExact(id)) return id.rawJSON; // a key past 2^53: the digits the server sent, never rounded
  return typeof id === "string" ? id : String(id);
}
