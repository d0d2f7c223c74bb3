// show.js: how the dashboard shows values: nothing it shows can reorder or hide text, no number is
// shown other than as its exact JSON text, and a string never passes for a number, a boolean or NULL.

/** The characters `jtag` never prints raw (docs/security.md §11: the Unicode categories Cc, Cf, Zl
 * and Zp: controls, bidirectional controls, zero-width and other invisible format characters, line
 * and paragraph separators). */
const UNSHOWABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/** `text` with every unshowable character as an escape, as `jtag --format=table` prints it
 * ("\x1b", "\u202e", "\U000e0001"). */
export function visible(text) {
  return String(text).replace(UNSHOWABLE, (ch) => {
    const code = ch.codePointAt(0);
    if (code <= 0xff) return `\\x${code.toString(16).padStart(2, "0")}`;
    if (code <= 0xffff) return `\\u${code.toString(16).padStart(4, "0")}`;
    return `\\U${code.toString(16).padStart(8, "0")}`;
  });
}

/** True for a number the browser could not hold exactly, kept as its JSON text (jtag.js parseExact). */
export const isExact = (value) => typeof JSON.isRawJSON === "function" && JSON.isRawJSON(value);

/** A number as JSON text: the digits the server sent for one kept as text, else the shortest text
 * that reads back as the same double (0.1234567, 1e-300, -0, 4611686018427387904), never rounded
 * or grouped. */
export function numberText(value) {
  if (isExact(value)) return value.rawJSON;
  if (Object.is(value, -0)) return "-0";
  return String(value);
}

/** A value as JSON text (objects and arrays: numbers kept as text stay exact), escaped for display. */
export function jsonText(value) {
  return visible(JSON.stringify(value));
}

// A string that would read as another type if shown bare: a number, a boolean, null or an infinity.
const LOOKS_TYPED = /^\s*(-?(\d|\.\d)|[+-]?(inf|infinity|nan)\s*$|(true|false|null|none)\s*$)/i;

/** The text of a value in a grid cell, and its kind: "num", "text", "json" or "null". A string that
 * looks like another type ("1", "NULL", "-Infinity", "true") is shown quoted, so the key 1 and the
 * text '1' differ on screen. */
export function cellText(value) {
  if (value === null || value === undefined) return { text: "NULL", kind: "null" };
  if (typeof value === "number" || isExact(value)) return { text: numberText(value), kind: "num" };
  if (typeof value === "boolean") return { text: String(value), kind: "json" };
  if (typeof value === "object") return { text: jsonText(value), kind: "json" };
  const text = String(value);
  return { text: LOOKS_TYPED.test(text) || text === "" ? jsonText(text) : visible(text), kind: "text" };
}
