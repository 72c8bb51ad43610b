// Small DOM and formatting helpers shared by the console modules.
// Everything that puts data on the page goes through textContent: names, site names and
// messages come from visitors and client organisations, so they are never parsed as HTML.

/** Clone a <template> by id and return its first element. */
export function cloneTemplate(id) {
  const tpl = document.getElementById(id);
  return tpl.content.firstElementChild.cloneNode(true);
}

/** The element marked data-slot="name" inside root (templates name their holes this way). */
export function slot(root, name) {
  return root.querySelector(`[data-slot="${name}"]`);
}

/** Set text safely; null/undefined become an empty string. */
export function setText(node, value) {
  const text = value == null ? "" : String(value);
  if (node.textContent !== text) node.textContent = text;
}

/**
 * A random id for client_id and ref: 22 url-safe characters (fits 8..64 of [A-Za-z0-9_-]).
 * getRandomValues works on plain http too, unlike crypto.randomUUID.
 */
export function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  let s = btoa(String.fromCharCode(...bytes));
  return s.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * A stable hue for an organisation, so each client's chats carry the same colour dot in the
 * list, tabs and pane header: operators serve many dealerships and must not mix them up.
 */
export function orgHue(key) {
  const s = String(key ?? "");
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return Math.abs(h) % 360;
}

const SITE_SEPARATORS = [" - ", " – ", " — ", ": ", ", ", " | "];

/**
 * A site's name without a leading copy of its organisation's name ("Demo Motors - Main Street"
 * beside "Demo Motors" reads as "Main Street"). Mirrors site_text in templates/console/_macros.html.
 */
export function siteLabel(orgName, siteName) {
  const org = String(orgName ?? "");
  const site = String(siteName ?? "");
  if (!org) return site;
  for (const sep of SITE_SEPARATORS) {
    const prefix = org + sep;
    if (site.length > prefix.length && site.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase()) {
      return site.slice(prefix.length);
    }
  }
  return site;
}

/** Apply the organisation colour via CSSOM (allowed under a strict CSP, unlike style="..."). */
export function paintOrg(node, key) {
  node.style.setProperty("--org-hue", String(orgHue(key)));
}

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayClock = new Intl.DateTimeFormat(undefined, {
  day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
});
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

export function parseTime(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** A server time; one written without a zone is UTC. */
export function parseUtc(value) {
  if (typeof value !== "string" || !value) return null;
  return parseTime(/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`);
}

/** A new element with a class and text (textContent: never parsed as HTML). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = String(text);
  return node;
}

/** "14:05" today, "3 Mar, 14:05" otherwise. */
export function formatClock(date) {
  if (!date) return "";
  const now = new Date();
  return date.toDateString() === now.toDateString() ? clock.format(date) : dayClock.format(date);
}

export function formatFull(date) {
  return date ? full.format(date) : "";
}

/** "just now", "4 min", "2 h", then a date: for how long a visitor has been waiting. */
export function formatAgo(date, now = Date.now()) {
  if (!date) return "";
  const s = Math.max(0, Math.round((now - date.getTime()) / 1000));
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h`;
  return dayClock.format(date);
}

/** Fill a <time> element: machine value, visible text, full date as a tooltip. */
export function setTime(node, date, text) {
  if (!date) {
    setText(node, "");
    node.removeAttribute("datetime");
    return;
  }
  node.setAttribute("datetime", date.toISOString());
  node.title = formatFull(date);
  setText(node, text);
}

/** Read and write JSON in sessionStorage without ever throwing (private mode, quota). */
export const session = {
  get(key, fallback) {
    try {
      const raw = sessionStorage.getItem(key);
      return raw ? JSON.parse(raw) : fallback;
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      sessionStorage.setItem(key, JSON.stringify(value));
    } catch {
      /* storage full or disabled: the console still works, it just forgets on reload */
    }
  },
};

/** The session's CSRF token (base.html's <meta name="csrf-token">), sent on every write. */
function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") || "";
}

/**
 * Call the JSON API with the console's session cookie, never throwing: resolves to
 * {ok, status, data, message}. `message` is the server's own explanation on a refusal
 * (errors are `{"code", "detail"}` JSON; `message` is read too) or a plain-words fallback.
 */
export async function api(method, path, body, { signal } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch (err) {
    if (err?.name === "AbortError") return { ok: false, status: 0, data: null, message: "", aborted: true };
    return { ok: false, status: 0, data: null, message: "Couldn't reach the server. Check your connection and try again." };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.ok) return { ok: true, status: response.status, data, message: "" };
  let message = (data && (data.message || data.detail)) || "";
  if (typeof message !== "string") message = "";
  if (response.status === 401) message = "Your session has ended. Sign in again to continue.";
  else if (!message && response.status >= 500) message = "The server had a problem and nothing was changed. Please try again.";
  else if (!message) message = `That didn't work (error ${response.status}).`;
  return { ok: false, status: response.status, data, code: data?.code || null, message };
}
