// jtag.js: the dbhandles browser client, one reconnecting WebSocket for commands and events.
//
//   import { Commands, Events, Connection } from "/jtag.js";
//   const result = await Commands.execute("data/list", { collection: "users" });
//   if (!result.success) console.error(result.code, result.error);
//   const off = Events.subscribe("data:users:*", (event) => console.log(event.event, event.payload));
//   off();  // unsubscribe
//
// Commands.execute resolves with the result envelope, success or failure, exactly like the server's
// HTTP answer; it never rejects. Requests sent while the socket is down wait for it to come back (up to
// `timeout` ms). Subscriptions are renewed after every reconnect.

const LOST = "the connection to the dbhandles server was lost; the command may or may not have run";

/** True when an event name matches a shell-style pattern such as "data:users:*" or "data:*". */
export function matches(pattern, name) {
  const source = pattern
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${source}$`).test(name);
}

/** The significant digits of a JSON number's text or of a double's shortest text ("-0.0120e5" and
 * 1200 both give "12"). */
function digits(text) {
  return text.replace(/[eE].*$/, "").replace(/[-+.]/g, "").replace(/^0+/, "").replace(/0+$/, "");
}

/**
 * JSON.parse that changes no number: a number a double cannot hold exactly (an integer past 2^53
 * such as 9007199254740993, or more digits than a double keeps) becomes `JSON.rawJSON(its text)`,
 * which JSON.stringify writes back digit for digit (`JSON.isRawJSON(v)`, `v.rawJSON` is the text).
 * With `allNumbers`, every number is kept as its text (what the user typed: 1.0 stays 1.0).
 * Needs the source text of the reviver (Chromium 114+); throws SyntaxError on text that is not JSON.
 */
export function parseExact(text, { allNumbers = false } = {}) {
  return JSON.parse(text, (key, value, context) => {
    if (typeof value !== "number" || !context || typeof context.source !== "string") return value;
    if (allNumbers || digits(context.source) !== digits(String(Math.abs(value)))) {
      return JSON.rawJSON(context.source);
    }
    return value;
  });
}

function failure(code, error) {
  return { success: false, timestamp: new Date().toISOString(), error, code };
}

class Connection {
  constructor() {
    this.url = null;
    this.socket = null;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, timer, message}
    this.outbox = []; // messages waiting for the socket to open
    this.patterns = new Map(); // pattern -> Set(callback)
    this.statusListeners = new Set();
    this.status = "idle";
    this.sessionId = null;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.unauthorized = false;
    this.hasToken = false;
    this.actor = null;
  }

  /**
   * Point the client at a server (default: the page's own origin) and connect. `token` is sent as
   * `/ws?token=...` (a browser cannot set headers on a WebSocket; the server takes it out of the
   * address before logging anything). Servers need one unless started with --allow-anonymous.
   * Calling it again (a new token, or none) replaces the connection.
   */
  configure({ url, token } = {}) {
    const base = url || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    this.url = token ? `${base}${base.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : base;
    this.hasToken = Boolean(token);
    this.unauthorized = false;
    if (this.socket) {
      const old = this.socket;
      this.socket = null;
      old.close();
    }
    this.connect();
  }

  /**
   * Ask the server whom `token` belongs to, without using it: resolves with {actor} on the server's
   * hello, or {error} when it refuses the token or cannot be reached. The probe's socket is closed.
   */
  probe(token, { timeout = 10000 } = {}) {
    const base = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    return new Promise((resolve) => {
      const socket = new WebSocket(`${base}?token=${encodeURIComponent(token)}`);
      const done = (answer) => {
        clearTimeout(timer);
        socket.onmessage = socket.onclose = null;
        socket.close();
        resolve(answer);
      };
      const timer = setTimeout(() => done({ error: "no answer from the server" }), timeout);
      socket.onmessage = (msg) => {
        let message = null;
        try {
          message = JSON.parse(msg.data);
        } catch {
          return;
        }
        if (message.type === "hello") done({ actor: message.actor });
        else if (message.type === "error") done({ error: message.error || "the server refused this token" });
      };
      socket.onclose = () => done({ error: "the server refused this token" });
    });
  }

  ensure() {
    if (!this.url) this.configure();
  }

  setStatus(status, detail) {
    this.status = status;
    for (const listener of this.statusListeners) {
      try {
        listener(status, detail);
      } catch (err) {
        console.error("jtag status listener failed", err);
      }
    }
  }

  /**
   * Call `listener(status, detail)` on "connecting", "open" (detail: {sessionId, actor}), "closed"
   * (detail: {retryIn}) and "unauthorized" (detail: {error}); returns an unsubscribe function.
   */
  onStatus(listener) {
    this.statusListeners.add(listener);
    listener(this.status);
    return () => this.statusListeners.delete(listener);
  }

  connect() {
    clearTimeout(this.reconnectTimer);
    this.setStatus("connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      // "open" is announced on the server's hello: only then is the token known to be good.
      this.attempt = 0;
      for (const pattern of this.patterns.keys()) this.send({ type: "subscribe", id: this.nextId++, pattern });
      for (const message of this.outbox.splice(0)) {
        socket.send(JSON.stringify(message));
        const entry = message.type === "request" && this.pending.get(message.id);
        if (entry) entry.sent = true;
      }
    };
    socket.onmessage = (msg) => this.receive(msg.data);
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.unauthorized) return; // retrying with the same token cannot help: wait for configure()
      // A request already sent may or may not have run: say so instead of resending it.
      for (const [id, entry] of this.pending) {
        if (entry.sent) {
          clearTimeout(entry.timer);
          this.pending.delete(id);
          entry.resolve(failure("server_unreachable", LOST));
        }
      }
      const delay = Math.min(5000, 250 * 2 ** this.attempt++);
      this.setStatus("closed", { retryIn: delay });
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    };
  }

  /** The server refused this connection's token: fail every waiting request and stop retrying. */
  refuseAll(message) {
    this.unauthorized = true;
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      this.pending.delete(id);
      entry.resolve(failure(message.code, message.error));
    }
    this.outbox = this.outbox.filter((m) => m.type !== "request");
    this.setStatus("unauthorized", { error: message.error });
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    this.outbox.push(message);
    return false;
  }

  receive(text) {
    let message;
    try {
      message = parseExact(text);
    } catch {
      console.warn("jtag: ignoring a message that is not JSON", text);
      return;
    }
    switch (message.type) {
      case "hello":
        this.sessionId = message.sessionId;
        this.actor = message.actor;
        this.setStatus("open", { sessionId: message.sessionId, actor: message.actor });
        break;
      case "response": {
        const entry = this.pending.get(message.id);
        if (entry) {
          clearTimeout(entry.timer);
          this.pending.delete(message.id);
          entry.resolve(message.result);
        }
        break;
      }
      case "event": {
        // One message per event, naming every subscribed pattern it matched.
        for (const pattern of message.patterns ?? [message.pattern]) {
          const callbacks = this.patterns.get(pattern);
          for (const callback of callbacks ? [...callbacks] : []) {
            try {
              callback({ event: message.event, payload: message.payload });
            } catch (err) {
              console.error(`jtag: subscriber of ${pattern} failed`, err);
            }
          }
        }
        break;
      }
      case "error": {
        if (message.id === null && message.code === "unauthorized") {
          this.refuseAll(message);
          break;
        }
        const entry = this.pending.get(message.id);
        if (entry) {
          clearTimeout(entry.timer);
          this.pending.delete(message.id);
          entry.resolve(failure(message.code, message.error));
        } else {
          console.warn(`jtag: server error ${message.code}: ${message.error}`);
        }
        break;
      }
      default:
        break; // subscribed, unsubscribed, pong, overflow: nothing to do
    }
  }

  execute(command, params = {}, { timeout = 30000 } = {}) {
    this.ensure();
    if (this.unauthorized) return Promise.resolve(failure("unauthorized", "this server needs a valid token"));
    return new Promise((resolve) => {
      const id = this.nextId++;
      const message = { type: "request", id, command, params };
      const timer = setTimeout(() => {
        this.pending.delete(id);
        const index = this.outbox.indexOf(message);
        if (index >= 0) this.outbox.splice(index, 1);
        resolve(failure("server_unreachable", `no answer from the dbhandles server within ${timeout} ms`));
      }, timeout);
      const entry = { resolve, timer, sent: false };
      this.pending.set(id, entry);
      entry.sent = this.send(message);
    });
  }

  subscribe(pattern, callback) {
    this.ensure();
    if (typeof pattern !== "string" || !pattern) throw new TypeError("pattern must be a non-empty string");
    let callbacks = this.patterns.get(pattern);
    if (!callbacks) {
      callbacks = new Set();
      this.patterns.set(pattern, callbacks);
      this.send({ type: "subscribe", id: this.nextId++, pattern });
    }
    callbacks.add(callback);
    return () => {
      callbacks.delete(callback);
      if (callbacks.size === 0 && this.patterns.get(pattern) === callbacks) {
        this.patterns.delete(pattern);
        this.send({ type: "unsubscribe", id: this.nextId++, pattern });
      }
    };
  }
}

const connection = new Connection();

export { connection as Connection };

export const Commands = {
  /** Run a command; resolves with its result envelope (check `.success`, then `.code` / `.error`). */
  execute: (name, params = {}, options = {}) => connection.execute(name, params, options),
};

export const Events = {
  /** Call `callback({event, payload})` for each event matching `pattern`; returns an unsubscribe function. */
  subscribe: (pattern, callback) => connection.subscribe(pattern, callback),
};
