// The Visitors view: who is browsing my sites right now (docs/tracking.md "Operators").
// `welcome.visitors` fills it, every `visitor` frame (a beacon arrived) updates or adds one, and a
// visitor leaves the list 2 minutes after their last activity. Each row can invite the visitor
// to chat. Everything is written with textContent: page titles and paths come from client
// websites (and, through them, from anyone who can put a title on a page).

import { cloneTemplate, setText, parseTime, paintOrg } from "./console-util.js";

export const LIVE_WINDOW_MS = 2 * 60 * 1000; // tracking.md: drop 2 minutes after last_seen_at
const ANNOUNCE_EVERY_MS = 10000; // at most one "new visitor" announcement this often
export const DEFAULT_INVITATION = "Hi! Can we help you with anything?";

const vslot = (root, name) => root.querySelector(`[data-vslot="${name}"]`);

// ───────────────────────────── wording ─────────────────────────────

const CHANNELS = {
  direct: "Direct",
  search: "Search",
  social: "Social",
  email: "Email",
  campaign: "Campaign",
  other: "Referral",
};

const DEVICES = { desktop: "Desktop", mobile: "Mobile", tablet: "Tablet" };

let regionNames = null;
try {
  regionNames = new Intl.DisplayNames(undefined, { type: "region" });
} catch {
  regionNames = null; // an old browser: the two-letter code alone
}

/** "45 s", "4 min 12 s", "1 h 05 min": how long a visit or a page view lasted. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

/** {text: "GB · London, England", title: "United Kingdom"}; "Unknown" without a country. */
export function locationText(location) {
  const country = typeof location?.country === "string" ? location.country.toUpperCase() : "";
  const places = [location?.city, location?.region].filter((p) => typeof p === "string" && p);
  if (!country && !places.length) return { text: "Unknown", title: "Location unknown" };
  let name = "";
  if (country && regionNames) {
    try {
      name = regionNames.of(country) || "";
    } catch {
      name = "";
    }
  }
  const text = [country || "Unknown country", places.join(", ")].filter(Boolean).join(" · ");
  return { text, title: [places.join(", "), name || country].filter(Boolean).join(", ") };
}

/** "Chrome 120 · Windows · Desktop". */
export function deviceText(device) {
  const browser = [device?.browser, device?.browser_major].filter(Boolean).join(" ");
  const cls = DEVICES[device?.class] || device?.class || "";
  const parts = [browser, device?.os, cls].filter((p) => p && p !== "Other");
  return parts.length ? parts.join(" · ") : "Unknown";
}

/** The referrer origin as a host name: "https://www.google.com" → "www.google.com". */
export function referrerHost(referrer) {
  if (typeof referrer !== "string" || !referrer) return "";
  try {
    return new URL(referrer).host || referrer;
  } catch {
    return referrer;
  }
}

/** "Search · www.google.com", "Direct". */
export function sourceText(channel, referrer) {
  const label = CHANNELS[channel] || (channel ? String(channel) : "Unknown");
  const host = referrerHost(referrer);
  return host ? `${label} · ${host}` : label;
}

export function kindText(returning) {
  return returning ? "Returning" : "New";
}

export function pagesText(n) {
  const count = Number.isInteger(n) && n > 0 ? n : 0;
  return count === 1 ? "1 page" : `${count} pages`;
}

// ───────────────────────────── the list ─────────────────────────────

/**
 * One visitor as this console knows them: the server's object plus when (on OUR clock) they
 * were last active, so the time on site can tick and the row can expire without trusting the
 * visitor's clock (beacon timestamps come from their browser).
 */
class LiveVisitor {
  constructor(data, seenAt) {
    this.data = data;
    this.seenAt = seenAt;
    this.status = null; // {kind: "success" | "error", text}
    this.pending = false; // an invite is in flight
    this.formOpen = false;
    this.version = 0; // bumped on every change the row shows
  }

  get id() {
    return this.data.id;
  }

  secondsOnSite(now) {
    const base = Number.isFinite(this.data.seconds) ? this.data.seconds : 0;
    return base + Math.max(0, Math.floor((now - this.seenAt) / 1000));
  }

  get startedAt() {
    return parseTime(this.data.started_at)?.getTime() ?? this.seenAt;
  }
}

export class VisitorsView {
  /**
   * @param {object} el {list, empty, meta, heading, announcer, navCount, navSr}
   * @param {object} cb
   *   where(siteId) -> {org, site, siteName, orgKey}
   *   conversationState(id) -> "waiting" | "active" | "closed" | null (unknown to this console)
   *   canOpen(id) -> bool; openChat(id)
   *   invite(visitId, text) -> bool (false: offline, nothing sent)
   *   visible() -> bool; filter() -> site id or ""
   */
  constructor(el, cb) {
    this.el = el;
    this.cb = cb;
    /** @type {Map<string, LiveVisitor>} */
    this.items = new Map();
    /** @type {Map<string, HTMLLIElement>} */
    this.rows = new Map();
    /** @type {Map<string, {item: LiveVisitor, sig: string}>} what each row last showed */
    this.painted = new Map();
    this.welcomed = false;
    this.newQueue = [];
    this.lastAnnounce = 0;
    this.announceTimer = null;
  }

  // ── data ──

  /** welcome: the authoritative list. Rows that survive keep their invitation status. */
  reset(visitors, now = Date.now()) {
    const next = new Map();
    for (const v of Array.isArray(visitors) ? visitors : []) {
      if (!valid(v)) continue;
      const last = parseTime(v.last_seen_at)?.getTime() ?? now;
      const seenAt = Math.min(now, last);
      if (now - seenAt > LIVE_WINDOW_MS) continue;
      const old = this.items.get(v.id);
      const item = new LiveVisitor(v, seenAt);
      if (old) {
        item.status = old.status;
        item.formOpen = old.formOpen;
      }
      next.set(v.id, item);
    }
    this.items = next;
    this.welcomed = true;
  }

  /** A `visitor` frame: a beacon just arrived, so the visitor is active now. */
  upsert(v, now = Date.now()) {
    if (!valid(v)) return false;
    const old = this.items.get(v.id);
    if (old) {
      old.data = v;
      old.seenAt = now;
      old.version += 1;
      return false;
    }
    this.items.set(v.id, new LiveVisitor(v, now));
    this.queueAnnouncement(v);
    return true;
  }

  get(id) {
    return this.items.get(id);
  }

  /** The live visit a conversation started in (a fallback while conversation.visit_id is unset). */
  visitOfConversation(conversationId) {
    for (const item of this.items.values()) {
      if (item.data.conversation_id === conversationId) return item.id;
    }
    return null;
  }

  /** Drop visitors inactive for 2 minutes; true when the list changed. */
  expire(now = Date.now()) {
    let changed = false;
    for (const [id, item] of this.items) {
      if (now - item.seenAt > LIVE_WINDOW_MS) {
        this.items.delete(id);
        changed = true;
      }
    }
    return changed;
  }

  shown() {
    const filter = this.cb.filter();
    return [...this.items.values()]
      .filter((i) => !filter || String(i.data.site_id) === filter)
      .sort((a, b) => b.startedAt - a.startedAt || a.id.localeCompare(b.id));
  }

  inChat(item) {
    const cid = item.data.conversation_id;
    if (!cid) return false;
    return this.cb.conversationState(cid) !== "closed";
  }

  // ── invitations ──

  invited(visitId) {
    const item = this.items.get(visitId);
    if (!item) return;
    item.pending = false;
    item.formOpen = false;
    item.status = { kind: "success", text: "Invitation sent" };
    item.version += 1;
    const row = this.rows.get(visitId);
    if (row && row.contains(document.activeElement)) vslot(row, "invite").focus();
    this.announce(`Invitation sent to ${item.data.label || "the visitor"}.`);
  }

  inviteFailed(visitId, text) {
    const item = this.items.get(visitId);
    if (!item) {
      this.announce(text);
      return;
    }
    item.pending = false;
    item.status = { kind: "error", text };
    item.version += 1;
    this.announce(text);
  }

  // ── rendering ──

  render(now = Date.now()) {
    const list = this.shown();
    this.renderCount(list.length);
    if (!this.cb.visible()) return;
    const ul = this.el.list;
    const keep = new Set(list.map((i) => i.id));
    for (const [id, li] of this.rows) {
      if (keep.has(id)) continue;
      const hadFocus = li.contains(document.activeElement);
      li.remove();
      this.rows.delete(id);
      this.painted.delete(id);
      if (hadFocus) this.el.heading.focus();
    }
    let prev = null;
    for (const item of list) {
      let li = this.rows.get(item.id);
      if (!li) {
        li = this.makeRow(item.id);
        this.rows.set(item.id, li);
      }
      // Repaint only rows whose visitor, chat state or organisation colour changed: a busy
      // site sends a frame per beacon, and the time on site has its own once-a-second tick.
      const cid = item.data.conversation_id;
      const inChat = this.inChat(item);
      const canOpen = inChat && this.cb.canOpen(cid);
      const sig = [item.version, inChat, canOpen, this.cb.where(item.data.site_id).orgKey].join("|");
      const painted = this.painted.get(item.id);
      if (!painted || painted.item !== item || painted.sig !== sig) {
        this.fill(li, item, now);
        this.painted.set(item.id, { item, sig });
      }
      const want = prev ? prev.nextSibling : ul.firstChild;
      if (want !== li) ul.insertBefore(li, want);
      prev = li;
    }
    this.el.empty.hidden = list.length > 0 || !this.welcomed;
    ul.hidden = list.length === 0;
  }

  renderCount(n) {
    const { navCount, navSr, meta } = this.el;
    if (navCount) {
      navCount.hidden = n === 0;
      setText(navCount, n > 99 ? "99+" : String(n));
    }
    if (navSr) setText(navSr, n ? `, ${n} browsing now` : "");
    if (meta) {
      const filtered = this.cb.filter() ? " on the selected site" : "";
      let text;
      if (!this.welcomed) text = "Connecting…";
      else if (!this.cb.online()) text = "Offline: this list updates again when the console reconnects.";
      else if (n === 0) text = `No one is browsing${filtered} right now.`;
      else text = `${n === 1 ? "1 visitor" : `${n} visitors`} browsing${filtered} now. Updated live.`;
      setText(meta, text);
    }
  }

  /** The time on site of every visible row, once a second. */
  tick(now = Date.now()) {
    if (!this.cb.visible()) return;
    for (const [id, li] of this.rows) {
      const item = this.items.get(id);
      if (item) setText(vslot(li, "time"), formatDuration(item.secondsOnSite(now)));
    }
  }

  makeRow(id) {
    const li = cloneTemplate("tpl-visitor");
    li.dataset.id = id;
    const article = li.querySelector("article");
    const label = vslot(li, "label");
    label.id = `visitor-label-${id}`;
    article.setAttribute("aria-labelledby", label.id);
    const invite = vslot(li, "invite");
    const form = vslot(li, "form");
    const text = vslot(li, "text");
    form.id = `invite-form-${id}`;
    text.id = `invite-text-${id}`;
    vslot(li, "form-label").htmlFor = text.id;
    invite.setAttribute("aria-controls", form.id);
    invite.setAttribute("aria-describedby", label.id);
    vslot(li, "send").setAttribute("aria-describedby", label.id);
    vslot(li, "open").setAttribute("aria-describedby", label.id);

    invite.addEventListener("click", () => {
      const item = this.items.get(id);
      if (!item) return;
      item.formOpen = !item.formOpen;
      if (item.formOpen) {
        text.value = DEFAULT_INVITATION;
        item.status = null;
      }
      this.fill(li, item, Date.now());
      if (item.formOpen) {
        text.focus();
        text.select();
      }
    });
    vslot(li, "cancel").addEventListener("click", () => {
      const item = this.items.get(id);
      if (!item) return;
      item.formOpen = false;
      this.fill(li, item, Date.now());
      invite.focus();
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit(id, li);
    });
    text.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        vslot(li, "cancel").click();
      } else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit(id, li);
      }
    });
    vslot(li, "open").addEventListener("click", () => {
      const cid = this.items.get(id)?.data.conversation_id;
      if (cid) this.cb.openChat(cid);
    });
    return li;
  }

  submit(id, li) {
    const item = this.items.get(id);
    if (!item || item.pending) return;
    const text = vslot(li, "text").value.trim() || DEFAULT_INVITATION;
    if (this.cb.invite(id, text)) {
      item.pending = true;
      item.status = null;
    } else {
      item.status = { kind: "error", text: "You're offline. Try again when reconnected." };
    }
    this.fill(li, item, Date.now());
  }

  /** Paint a row from its visitor (clicks call this directly; render() when something changed). */
  fill(li, item, now) {
    const v = item.data;
    const where = this.cb.where(v.site_id);
    paintOrg(li, where.orgKey);
    setText(vslot(li, "org"), where.org || "Unknown organisation");
    setText(vslot(li, "site"), where.site || "Unknown site");
    vslot(li, "site").title = where.siteName || "";
    setText(vslot(li, "label"), v.label || "Visitor");
    const kind = vslot(li, "kind");
    setText(kind, kindText(v.returning));
    kind.className = `v-kind ${v.returning ? "v-returning" : "v-new"}`;

    const page = v.page || {};
    const title = vslot(li, "title");
    const path = typeof page.path === "string" ? page.path : "";
    setText(title, page.title || path || "Unknown page");
    title.title = page.title || "";
    setText(vslot(li, "path"), page.title ? path : "");
    vslot(li, "path").title = path;
    li.querySelector(".v-page-path .sep").hidden = !page.title || !path;
    setText(vslot(li, "pages"), pagesText(v.pageviews));

    setText(vslot(li, "time"), formatDuration(item.secondsOnSite(now)));
    const loc = locationText(v.location);
    const locNode = vslot(li, "location");
    setText(locNode, loc.text);
    locNode.title = loc.title;
    locNode.classList.toggle("is-unknown", loc.text === "Unknown");
    setText(vslot(li, "device"), deviceText(v.device));
    const source = vslot(li, "source");
    setText(source, sourceText(v.channel, v.referrer));
    source.title = v.referrer || "";

    const inChat = this.inChat(item);
    const invite = vslot(li, "invite");
    const form = vslot(li, "form");
    if (inChat) item.formOpen = false;
    invite.hidden = inChat;
    invite.setAttribute("aria-expanded", item.formOpen ? "true" : "false");
    vslot(li, "inchat").hidden = !inChat;
    const open = vslot(li, "open");
    open.hidden = !(inChat && this.cb.canOpen(v.conversation_id));
    form.hidden = !item.formOpen;
    li.classList.toggle("is-inviting", item.formOpen);
    const send = vslot(li, "send");
    send.disabled = item.pending;
    setText(send, item.pending ? "Sending…" : "Send invitation");

    const status = vslot(li, "status");
    const shownStatus = inChat ? null : item.status;
    status.hidden = !shownStatus;
    status.className = `v-status${shownStatus ? ` v-status-${shownStatus.kind}` : ""}`;
    setText(status, shownStatus?.text || "");
    li.classList.toggle("in-chat", inChat);
  }

  // ── announcements ──

  queueAnnouncement(v) {
    if (!this.welcomed) return;
    this.newQueue.push(v);
    if (this.announceTimer) return;
    const wait = Math.max(0, this.lastAnnounce + ANNOUNCE_EVERY_MS - Date.now());
    this.announceTimer = setTimeout(() => this.flushAnnouncements(), Math.max(wait, 500));
  }

  flushAnnouncements() {
    this.announceTimer = null;
    const filter = this.cb.filter();
    const fresh = this.newQueue.filter(
      (v) => this.items.has(v.id) && (!filter || String(v.site_id) === filter),
    );
    this.newQueue = [];
    // Only while the Visitors view is on screen: elsewhere the nav badge carries the count,
    // and a busy site would drown the chat announcements that matter more.
    if (!fresh.length || !this.cb.visible()) return;
    this.lastAnnounce = Date.now();
    if (fresh.length === 1) {
      const v = fresh[0];
      const where = this.cb.where(v.site_id);
      const place = [where.org, where.site].filter(Boolean).join(" – ");
      const page = v.page?.title || v.page?.path;
      this.announce(`New visitor on ${place || "one of your sites"}${page ? `, viewing ${page}` : ""}.`);
    } else {
      this.announce(`${fresh.length} new visitors on your sites.`);
    }
  }

  announce(text) {
    const el = this.el.announcer;
    if (!el) return;
    el.textContent = "";
    setTimeout(() => (el.textContent = text), 50);
  }
}

function valid(v) {
  return v && typeof v === "object" && typeof v.id === "string" && v.id;
}

