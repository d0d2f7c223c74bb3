// token.js: the token of this tab, and a token offered by the address (`#token=...`).

import { Connection } from "/jtag.js";
import { visible } from "/show.js";

const $ = (id) => document.getElementById(id);

export const TOKEN_KEY = "dbhandles.token";

/** The token of this tab (sessionStorage: it goes when the tab closes, and no other tab sees it). */
export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** A token in the address (`#token=...`, as printed by `jtag serve` when it creates the admin token),
 * on load or on a later hash change: taken out of the address bar at once (so it is not shared by
 * copy-paste) and never used silently. Another site can open this page with a token of its choosing
 * (and the tab would then show that actor's data as the user's own, and act as it), so the server
 * is asked whom it belongs to and the user is shown that actor and asked first. Resolves with the
 * token to use, or null. */
export async function takeTokenFromAddress() {
  const match = location.hash.match(/token=([^&]+)/);
  if (!match) return null;
  history.replaceState(null, "", location.pathname + location.search);
  let given = null;
  try {
    given = decodeURIComponent(match[1]).trim();
  } catch {
    given = null;
  }
  if (!given || given === storedToken()) return null;
  const answer = await Connection.probe(given);
  return new Promise((resolve) => {
    $("token-offer-text").textContent = answer.actor
      ? `This link carries a token of the actor “${visible(answer.actor)}”.` +
        (storedToken() ? " Using it replaces the token this tab uses now." : "")
      : `This link carries a token the server refuses: ${visible(answer.error)}.`;
    $("token-offer-accept").hidden = !answer.actor;
    $("token-offer").hidden = false;
    const finish = (use) => {
      $("token-offer").hidden = true;
      $("token-offer-form").onsubmit = null;
      $("token-offer-ignore").onclick = null;
      resolve(use ? given : null);
    };
    $("token-offer-form").onsubmit = (event) => {
      event.preventDefault();
      finish(true);
    };
    $("token-offer-ignore").onclick = () => finish(false);
    $("token-offer-ignore").focus();
  });
}
