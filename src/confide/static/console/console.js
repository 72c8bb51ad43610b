// Confide operator console: wires the socket, the store and the DOM together.
// Protocol: docs/protocol.md (version 1). Module map:
//   console-socket.js  connection, hello, heartbeat, reconnect with backoff
//   console-outbox.js  unacknowledged messages, resent with the same client_id
//   console-store.js   conversations and messages merged by seq
//   console-ui.js      list items, tabs, panes (textContent only)
//   console-alerts.js  chime + desktop notification for new waiting chats
//   console-errors.js  server error codes in words an operator understands
//   console-keys.js    keyboard shortcuts and the tabs' arrow keys
//   console-visitors.js the Visitors view (who is browsing my sites now, invitations)
//   console-visit.js   the Visit panel beside a chat (path and usage data of its visit)
//   console-lead.js    the Lead panel beside a chat (details, consent, leads, earlier chats)

import { ConsoleSocket } from "./console-socket.js";
import { Outbox } from "./console-outbox.js";
import { Store } from "./console-store.js";
import { Pane, renderList } from "./console-ui.js";
import {
  chime, notifyNewChat, setupNotifyButton, unlockAudioOnGesture, soundEnabled, setSoundEnabled,
} from "./console-alerts.js";
import { session, setText, siteLabel } from "./console-util.js";
import { VisitorsView } from "./console-visitors.js";
import { friendly } from "./console-errors.js";
import { installKeyboard } from "./console-keys.js";

const app = document.getElementById("console-app");
const $ = (id) => document.getElementById(id);

const PANES_KEY = "confide.console.v1.panes";
const OUTBOX_KEY = "confide.console.v1.outbox";
const USER_KEY = "confide.console.v1.user";
const MAX_AUTO_JOIN = 60; // joined for live previews; beyond this, lists show server data only
const RESEND_AFTER_MS = 10000; // an unacked send this old is resent (same client_id, so safe)
const TYPING_REFRESH_MS = 3000; // re-send typing:true at most this often while typing
const TYPING_IDLE_MS = 3500; // stop "typing" after this long without a keystroke
const VISITOR_TYPING_TIMEOUT_MS = 8000; // hide "Visitor is typing…" if typing:false got lost
const BASE_TITLE = document.title;
const SECTION_TITLES = { chats: BASE_TITLE, visitors: BASE_TITLE.replace(/^Live chats/, "Visitors") };
const SECTION_HEADINGS = { chats: "Live chats", visitors: "Visitors" };

const store = new Store();
const outbox = new Outbox(OUTBOX_KEY);
/** @type {Map<string, Pane>} */
const panes = new Map();
let order = []; // pane ids in tab order
let activeId = null;
let joined = new Set(); // conversations joined on the CURRENT connection
let welcomed = false;
let online = false;
let refCounter = 0;
const refs = new Map(); // ref -> {type, conversation, client_id?}: gives `error` frames context
const typingOut = new Map(); // conversation -> {on, lastSentAt, idle}
const visitorTypingTimers = new Map();
const seenSent = new Map(); // conversation -> last seq we sent `seen` for
const narrow = window.matchMedia("(max-width: 760px)");
let siteFilter = "";
let section = "chats"; // "chats" (queues and panes) or "visitors" (#visitors)
let orgIds = new Map(); // organisation name -> id, learned from conversations (for the colour dot)

const visitors = new VisitorsView(
  {
    list: $("visitor-list"),
    empty: $("visitors-empty"),
    meta: $("visitors-meta"),
    heading: $("visitors-heading"),
    announcer: $("visitors-announcer"),
    navCount: $("nav-visitors-count"),
    navSr: $("nav-visitors-sr"),
  },
  {
    where: siteInfo,
    conversationState: (id) => {
      const state = store.get(id)?.state;
      return state && state !== "unknown" ? state : null;
    },
    canOpen: (id) => !!store.get(id)?.data,
    openChat: (id) => openPane(id),
    invite: (visit, text) => sendRef({ type: "invite", visit, text }, { visit }),
    visible: () => section === "visitors",
    filter: () => siteFilter,
    online: () => online,
  },
);

const socket = new ConsoleSocket(app.dataset.wsUrl, {
  onFrame: handleFrame,
  onStatus: showStatus,
  onFatal: showFatal,
});

// ───────────────────────────── sending ─────────────────────────────

/** Send with a fresh `ref`, remembered so an `error` can be shown in the right pane. */
function sendRef(frame, extra = {}) {
  const ref = `r${(++refCounter).toString(36)}`;
  refs.set(ref, { type: frame.type, conversation: frame.conversation, ...extra });
  if (refs.size > 500) refs.delete(refs.keys().next().value);
  const ok = socket.send({ ...frame, ref });
  if (!ok) refs.delete(ref);
  return ok;
}

function ensureJoined(id) {
  if (!welcomed || joined.has(id)) return;
  if (sendRef({ type: "join", conversation: id })) joined.add(id);
}

function leave(id) {
  if (joined.has(id)) {
    socket.send({ type: "leave", conversation: id });
    joined.delete(id);
  }
}

const RATE_PAUSE_MS = 2000; // longer than the server's 1 s cool-down after a refusal
let pausedUntil = 0;

function flushOutbox() {
  if (!online || Date.now() < pausedUntil) return;
  const now = Date.now();
  for (const e of outbox.due(now, RESEND_AFTER_MS)) {
    const ok = sendRef(
      { type: "send", conversation: e.conversation, client_id: e.client_id, text: e.text },
      { client_id: e.client_id },
    );
    if (ok) e.sentAt = now;
  }
}

function sendTyping(id, on) {
  const record = store.get(id);
  if (!record || record.state !== "active" || !online) return;
  let t = typingOut.get(id);
  if (!t) typingOut.set(id, (t = { on: false, lastSentAt: 0, idle: null }));
  clearTimeout(t.idle);
  const now = Date.now();
  if (on) {
    // Throttled, and never the text itself: only that someone is typing.
    if (!t.on || now - t.lastSentAt > TYPING_REFRESH_MS) {
      socket.send({ type: "typing", conversation: id, typing: true });
      t.lastSentAt = now;
    }
    t.on = true;
    t.idle = setTimeout(() => sendTyping(id, false), TYPING_IDLE_MS);
  } else if (t.on) {
    socket.send({ type: "typing", conversation: id, typing: false });
    t.on = false;
  }
}

/** Tell the visitor we saw their messages, but only when the pane is really in front of us. */
function markSeen(id) {
  const record = store.get(id);
  if (!record || !record.historyLoaded || !isFocused(id)) return;
  const v = record.lastVisitorSeq;
  record.mySeenSeq = Math.max(record.mySeenSeq ?? 0, record.contiguous);
  if (v > 0 && v > (seenSent.get(id) ?? 0) && online) {
    socket.send({ type: "seen", conversation: id, seq: v });
    seenSent.set(id, v);
  }
  refresh();
}

function isFocused(id) {
  return (
    id === activeId &&
    document.visibilityState === "visible" &&
    document.hasFocus() &&
    (!narrow.matches || app.dataset.view === "pane")
  );
}

// ───────────────────────────── frames ─────────────────────────────

function handleFrame(f) {
  switch (f.type) {
    case "welcome": return onWelcome(f);
    case "conversation": return onConversation(f);
    case "history": return onHistory(f);
    case "message": return onMessage(f);
    case "ack": return onAck(f);
    case "typing": return onTyping(f);
    case "seen": return onSeen(f);
    case "error": return onError(f);
    case "visitor": return onVisitor(f);
    case "invited": return onInvited(f);
    case "consent":
    case "lead_changed":
      // The agents' channel of a joined chat: re-read its lead panel if it is open.
      return panes.get(f.conversation)?.lead.load();
    default: return undefined; // pong and future frames: nothing to do
  }
}

function onWelcome(f) {
  const first = !welcomed;
  const user = f.user || null;
  // Another person signed in in this tab: forget the previous operator's panes and outbox.
  const prevUser = session.get(USER_KEY, null);
  if (user && prevUser != null && String(prevUser) !== String(user.id)) {
    session.set(PANES_KEY, null);
    for (const e of [...outbox.entries.values()]) outbox.settle(e.client_id);
  }
  if (user) session.set(USER_KEY, user.id);
  store.user = user;
  store.sites = Array.isArray(f.sites) ? f.sites : [];
  welcomed = true;
  online = true;
  joined = new Set();
  seenSent.clear();

  const previouslyWaiting = new Set(store.inList("waiting").map((r) => r.id));
  const previouslyListed = new Set([...previouslyWaiting, ...store.inList("mine").map((r) => r.id)]);
  const fresh = new Set();
  for (const conv of f.conversations || []) {
    if (!conv || !conv.id) continue;
    fresh.add(conv.id);
    const { record } = store.upsert(conv);
    record.detached = false;
    record.syncing = false;
    if (!first && store.listOf(record) === "waiting" && !previouslyWaiting.has(conv.id)) {
      alertNewWaiting(record);
    }
  }
  // welcome is authoritative for the queues: what is missing now left them while we were away.
  for (const record of [...store.records.values()]) {
    if (fresh.has(record.id)) continue;
    record.syncing = false;
    if (panes.has(record.id)) {
      if (previouslyListed.has(record.id)) record.detached = true;
    } else {
      store.delete(record.id);
    }
  }

  visitors.reset(f.visitors);
  if (first) restorePanes();
  else for (const pane of panes.values()) pane.lead.refreshSoon(); // frames missed while away
  for (const id of joinTargets()) ensureJoined(id);
  outbox.resetSent();
  flushOutbox();
  refresh();
}

/** Which conversations to subscribe to: open panes first, then my chats, then the queue. */
function joinTargets() {
  const ids = [...order];
  const mine = store.inList("mine").sort(byUpdatedDesc);
  const waiting = store.inList("waiting").sort(byCreatedAsc);
  for (const r of [...mine, ...waiting]) if (!ids.includes(r.id)) ids.push(r.id);
  return ids.slice(0, Math.max(MAX_AUTO_JOIN, order.length));
}

function onConversation(f) {
  const conv = f.conversation;
  if (!conv || !conv.id) return;
  const meta = f.ref ? refs.get(f.ref) : null;
  if (f.ref) refs.delete(f.ref);
  const { record, before, beforeState } = store.upsert(conv);
  record.detached = false;
  const after = store.listOf(record);
  const pane = panes.get(conv.id);

  if (after === "waiting" && beforeState == null) alertNewWaiting(record);
  if (after) ensureJoined(conv.id);

  if (pane) {
    if (meta?.type === "accept" || (beforeState === "waiting" && conv.state !== "waiting")) {
      pane.clearAccepting();
    }
    if (beforeState && beforeState !== conv.state) {
      if (conv.state === "active" && store.isMine(record)) {
        const enquiry = conv.source === "enquiry";
        pane.notice(
          enquiry
            ? "You took this enquiry. Answer the visitor by email or phone."
            : "You accepted this chat. The visitor can see your replies now.",
          "success",
        );
        // The Accept button that had focus disappears: move focus to the composer once rendered.
        if (conv.id === activeId) focusAfterRender = conv.id;
      } else if (conv.state === "active") {
        pane.notice(`${conv.operator?.name || "Another operator"} accepted this chat.`, "info", 0);
      } else if (conv.state === "closed") {
        pane.notice("This chat has been closed.", "info", 0);
        visitorTyping(record, false);
      }
    }
  } else if (!after) {
    // Not in my queues and not on screen: stop following it.
    leave(conv.id);
    store.delete(conv.id);
  }
  if (before === "waiting" && after !== "waiting" && !pane) announce(`A waiting chat on ${where(record)} was taken.`);
  refresh();
}

function onHistory(f) {
  const record = store.get(f.conversation);
  if (!record) return;
  if (f.ref) refs.delete(f.ref);
  const before = record.contiguous;
  const added = record.merge(Array.isArray(f.messages) ? f.messages : []);
  record.historyLoaded = true;
  record.syncing = false;
  if (Number.isInteger(f.last_seq) && record.data) {
    record.data.last_seq = Math.max(record.data.last_seq ?? 0, f.last_seq);
  }
  record.initSeenFromServer(f.agent_seen_seq);
  // Our own unacked messages may already be committed (ack lost in a disconnect).
  for (const m of added) if (m.client_id && outbox.get(m.client_id)) outbox.settle(m.client_id);
  const pane = panes.get(record.id);
  if (pane) {
    pane.setLoading(false);
    pane.addMessages(added, record);
    pane.renderPending(outbox.forConversation(record.id));
    pane.updateSeen(record);
  }
  // Still a hole (e.g. a message arrived during the sync)? Ask again, but only if we progressed.
  if (record.hasGap() && record.contiguous > before) requestSync(record);
  markSeen(record.id);
  refresh();
}

function requestSync(record) {
  if (record.syncing || !online) return;
  record.syncing = true;
  sendRef({ type: "sync", conversation: record.id, after: record.contiguous });
}

function onMessage(f) {
  const record = store.get(f.conversation);
  if (!record) return;
  if (f.client_id && outbox.get(f.client_id)) outbox.settle(f.client_id); // our echo: acked
  const added = record.merge([f]);
  if (record.data && f.seq > (record.data.last_seq ?? 0)) record.data.last_seq = f.seq;
  if (record.data && added.length && !record.historyLoaded) {
    // Not joined (beyond MAX_AUTO_JOIN, or join still in flight): the server sends a waiting
    // chat's messages to all of the site's agents, so keep the queue's count and preview live.
    record.data.preview = f.text;
    if (f.author?.role === "visitor") record.data.unread = (record.data.unread ?? 0) + 1;
  }
  if (f.author?.role === "visitor") visitorTyping(record, false);
  if (record.historyLoaded && record.hasGap()) requestSync(record);
  const pane = panes.get(record.id);
  if (pane) {
    pane.addMessages(added, record);
    pane.renderPending(outbox.forConversation(record.id));
    pane.updateSeen(record);
  }
  if (added.length && f.author?.role === "visitor") {
    pane?.lead.refreshSoon(); // details typed in the chat show up as suggestions
    if (isFocused(record.id)) markSeen(record.id);
    else if (store.listOf(record) === "mine") announce(`New message from ${record.visitorName}, ${where(record)}.`);
  }
  refresh();
}

function onAck(f) {
  if (f.ref) refs.delete(f.ref);
  const entry = outbox.settle(f.client_id);
  const record = store.get(f.conversation);
  if (!record) return;
  // The server masked a card number: show what was stored, not what was typed.
  const masked = f.notice === "card_masked" && typeof f.text === "string";
  if (entry) {
    const added = record.merge([{
      type: "message",
      conversation: f.conversation,
      seq: f.seq,
      client_id: f.client_id,
      author: { role: "agent", name: store.user?.name || "You" },
      text: masked ? f.text : entry.text,
      at: f.at,
    }]);
    const pane = panes.get(record.id);
    if (pane) {
      pane.addMessages(added, record);
      pane.updateSeen(record);
    }
    if (record.historyLoaded && record.hasGap()) requestSync(record);
  }
  if (masked) panes.get(record.id)?.noteOn(f.seq, "A card number was removed from this message.");
  panes.get(record.id)?.renderPending(outbox.forConversation(record.id));
  refresh();
}

function onTyping(f) {
  if (f.role !== "visitor") return;
  const record = store.get(f.conversation);
  if (record) visitorTyping(record, !!f.typing);
}

function visitorTyping(record, on) {
  clearTimeout(visitorTypingTimers.get(record.id));
  if (on) {
    visitorTypingTimers.set(record.id, setTimeout(() => visitorTyping(record, false), VISITOR_TYPING_TIMEOUT_MS));
  }
  if (record.visitorTyping === on) return;
  record.visitorTyping = on;
  panes.get(record.id)?.setTyping(on);
  refresh();
}

function onSeen(f) {
  if (f.role !== "visitor") return;
  const record = store.get(f.conversation);
  if (!record || !Number.isInteger(f.seq)) return;
  record.visitorSeenSeq = Math.max(record.visitorSeenSeq, f.seq);
  panes.get(record.id)?.updateSeen(record);
}

/** A beacon arrived for a visit on one of my sites: add or update the visitor. */
function onVisitor(f) {
  const v = f.visitor;
  if (!v || typeof v.id !== "string") return;
  visitors.upsert(v);
  for (const pane of panes.values()) if (pane.visit.visitId === v.id) pane.visit.refreshSoon();
  refresh();
}

function onInvited(f) {
  if (f.ref) refs.delete(f.ref);
  if (typeof f.visit === "string") visitors.invited(f.visit);
  refresh();
}

function onError(f) {
  if (f.code === "rate_limited" && !f.ref && !f.client_id) {
    // The server refuses every frame for a second after a refusal and cannot say which: resend
    // every unacked message, in the order typed, once that has passed.
    outbox.resetSent();
    pausedUntil = Date.now() + RATE_PAUSE_MS;
    setTimeout(flushOutbox, RATE_PAUSE_MS);
  }
  const meta = f.ref ? refs.get(f.ref) : null;
  if (f.ref) refs.delete(f.ref);
  if (meta?.type === "invite") {
    visitors.inviteFailed(meta.visit, friendly(f.code, "invite", f.message));
    refresh();
    return;
  }
  let conversation = meta?.conversation;
  const clientId = f.client_id || meta?.client_id;
  const entry = clientId ? outbox.get(clientId) : null;
  if (entry) conversation = conversation || entry.conversation;
  const type = meta?.type || (entry ? "send" : null);
  const record = conversation ? store.get(conversation) : null;
  const pane = conversation ? panes.get(conversation) : null;
  const text = friendly(f.code, type, f.message);

  if (entry) {
    const final = outbox.fail(clientId, f.code, text);
    pane?.renderPending(outbox.forConversation(entry.conversation));
    if (!final) setTimeout(flushOutbox, f.code === "rate_limited" ? 2000 : 4000);
    if (final) return; // shown inline on the message itself ("Not sent: …")
  }
  if (type === "accept") pane?.clearAccepting();
  if (type === "sync" && record) record.syncing = false;
  if (type === "join" && (f.code === "not_found" || f.code === "forbidden")) {
    joined.delete(conversation);
    if (record) {
      record.detached = true;
      record.historyLoaded = true;
      if (!pane) store.delete(conversation);
    }
    pane?.setLoading(false);
  }
  if (type === "typing" || type === "seen") return; // nothing useful to tell the operator
  if (pane) pane.notice(text, f.code === "rate_limited" ? "info" : "error");
  else globalNotice(text);
  refresh();
}

// ───────────────────────────── panes ─────────────────────────────

function openPane(id, { focus = true } = {}) {
  const record = store.ensure(id);
  let pane = panes.get(id);
  if (!pane) {
    pane = new Pane(record, paneCallbacks(id));
    panes.set(id, pane);
    order.push(id);
    $("pane-tabs").append(pane.tabWrap);
    $("panes").append(pane.root);
    pane.setLoading(!record.historyLoaded);
    pane.addMessages([...record.messages.values()].sort((a, b) => a.seq - b.seq), record);
    pane.renderPending(outbox.forConversation(id));
    pane.updateSeen(record);
    pane.setTyping(record.visitorTyping);
    ensureJoined(id);
  }
  record.isNew = false;
  select(id, focus ? "composer" : null);
}

function paneCallbacks(id) {
  return {
    select: () => select(id, "tab"),
    hide: () => hidePane(id),
    back: () => showList(id),
    accept: () => {
      if (sendRef({ type: "accept", conversation: id })) panes.get(id)?.setAccepting();
      else panes.get(id)?.notice("You're offline. Try again when reconnected.", "error");
    },
    closeConv: () => {
      sendTyping(id, false);
      if (!sendRef({ type: "close", conversation: id })) {
        panes.get(id)?.notice("You're offline. Try again when reconnected.", "error");
      }
    },
    send: (text) => {
      const entry = outbox.add(id, text);
      sendTyping(id, false);
      const pane = panes.get(id);
      pane?.renderPending(outbox.forConversation(id));
      flushOutbox();
      pane?.renderPending(outbox.forConversation(id));
      return !!entry;
    },
    typing: (on) => sendTyping(id, on),
    retry: (clientId) => {
      outbox.retry(clientId);
      panes.get(id)?.renderPending(outbox.forConversation(id));
      flushOutbox();
    },
    discard: (clientId) => {
      outbox.settle(clientId);
      panes.get(id)?.renderPending(outbox.forConversation(id));
    },
    isOnline: () => online,
  };
}

function select(id, focusTarget) {
  if (focusTarget && section !== "chats") showSection("chats", { push: true });
  activeId = id;
  for (const [pid, pane] of panes) pane.setActive(pid === id);
  if (narrow.matches) app.dataset.view = "pane";
  const pane = panes.get(id);
  if (pane) {
    pane.scrollToEnd(true);
    if (focusTarget === "composer") pane.focusComposer();
    else if (focusTarget === "tab") pane.tab.focus();
  }
  persistPanes();
  markSeen(id);
  refresh();
}

function hidePane(id) {
  const pane = panes.get(id);
  if (!pane) return;
  const idx = order.indexOf(id);
  pane.destroy();
  panes.delete(id);
  order = order.filter((x) => x !== id);
  const record = store.get(id);
  if (record && !store.listOf(record)) {
    leave(id);
    store.delete(id);
  }
  if (activeId === id) {
    activeId = order[Math.min(idx, order.length - 1)] ?? null;
    if (activeId) select(activeId, "tab");
    else showList(null);
  }
  persistPanes();
  refresh();
}

/** Phone layout: go back from a pane to the lists, returning focus to where we came from. */
function showList(fromId) {
  app.dataset.view = "list";
  const item = fromId && document.querySelector(`.conv-li[data-id="${CSS.escape(fromId)}"] .conv-item`);
  if (item) item.focus();
  else focusList();
  refresh();
}

function focusList() {
  const first = document.querySelector("#waiting-list .conv-item, #mine-list .conv-item");
  (first || $("waiting-heading")).focus();
}

function persistPanes() {
  session.set(PANES_KEY, {
    user: store.user?.id ?? null,
    active: activeId,
    open: order.map((id) => ({ id, data: store.get(id)?.data ?? null })),
  });
}

/** After a reload: reopen the panes this tab had, from the snapshot, then join them. */
function restorePanes() {
  const saved = session.get(PANES_KEY, null);
  if (!saved || !Array.isArray(saved.open)) return;
  if (store.user && saved.user != null && String(saved.user) !== String(store.user.id)) return;
  for (const { id, data } of saved.open) {
    if (typeof id !== "string" || panes.has(id)) continue;
    const record = store.ensure(id);
    if (!record.data && data) record.data = data;
    openPane(id, { focus: false });
  }
  if (saved.active && panes.has(saved.active)) select(saved.active, null);
  app.dataset.view = saved.active && panes.has(saved.active) ? "pane" : "list";
}

// ───────────────────────────── rendering ─────────────────────────────

const byCreatedAsc = (a, b) => (a.data?.created_at || "").localeCompare(b.data?.created_at || "");
const byUpdatedDesc = (a, b) => activity(b).localeCompare(activity(a));
const activity = (r) => r.lastMessage?.at || r.data?.updated_at || "";

/** "Demo Motors – Main Street": for announcements and notifications. */
function where(record) {
  return [record.orgName, record.siteLabel].filter(Boolean).join(" – ");
}

let refreshQueued = false;
let focusAfterRender = null;
/** Coalesce the many small updates of a busy socket into one paint. */
function refresh() {
  if (refreshQueued) return;
  refreshQueued = true;
  requestAnimationFrame(() => {
    refreshQueued = false;
    render();
  });
}

function render() {
  orgIds = new Map();
  for (const r of store.records.values()) {
    if (r.data?.organisation?.id != null && r.orgName) orgIds.set(r.orgName, r.data.organisation.id);
  }
  const matches = (r) => !siteFilter || r.siteId === siteFilter;
  const waiting = store.inList("waiting").filter(matches).sort(byCreatedAsc);
  const mine = store.inList("mine").filter(matches).sort(byUpdatedDesc);
  const open = (id) => openPane(id);
  const me = store.user?.name;
  renderList($("waiting-list"), waiting, { activeId, onOpen: open, me });
  renderList($("mine-list"), mine, { activeId, onOpen: open, me });
  counts("waiting", waiting.length, "waiting");
  counts("mine", mine.length, "active");

  for (const [id, pane] of panes) {
    const record = store.get(id);
    if (!record) continue;
    // conversation.visit_id; until a conversation frame carries it, the live visitor whose
    // conversation_id is this chat (remembered: the visitor may leave the live list).
    if (!record.data?.visit_id && !record.visitHint) record.visitHint = visitors.visitOfConversation(id);
    const visitId = record.data?.visit_id || record.visitHint || null;
    pane.update(record, {
      user: store.user,
      canReply: canReply(record),
      unread: record.unread,
      visitId,
      visitLive: !!(visitId && visitors.get(visitId)),
    });
    if (record.detached) lockDetached(pane);
  }
  $("pane-tabs").hidden = panes.size === 0;
  $("workspace-empty").hidden = panes.size > 0;
  app.classList.toggle("has-panes", panes.size > 0);

  if (focusAfterRender) {
    panes.get(focusAfterRender)?.focusComposer();
    focusAfterRender = null;
  }

  visitors.render();

  const unread = store.totalUnread();
  const title = SECTION_TITLES[section] || BASE_TITLE;
  document.title = unread ? `(${unread}) ${title}` : title;
}

/** Organisation and site of a site id, from welcome.sites, for the Visitors view. */
function siteInfo(siteId) {
  const site = store.sites.find((s) => String(s.id) === String(siteId));
  if (!site) return { org: "", site: "", siteName: "", orgKey: "" };
  const org = typeof site.organisation === "string" ? site.organisation : site.organisation?.name || "";
  return {
    org,
    site: siteLabel(org, site.name),
    siteName: site.name || "",
    // The same hue as this organisation's chats (keyed by id) once a chat told us the id.
    orgKey: orgIds.get(org) ?? org,
  };
}

// ───────────────────────────── sections: Live chats / Visitors ─────────────────────────────

function sectionFromUrl() {
  return window.location.hash === "#visitors" ? "visitors" : "chats";
}

/**
 * Show the chats (queues and panes) or the Visitors view. `push` records it in the history so
 * Back returns; `focus` moves focus to the new section's heading (for keyboard and screen-reader
 * users, who otherwise stay on a link whose page "changed" silently).
 */
function showSection(name, { push = false, focus = false } = {}) {
  const changed = section !== name;
  section = name;
  if (push) {
    const url = name === "visitors" ? "/console#visitors" : window.location.pathname;
    if (window.location.pathname + window.location.hash !== url) history.pushState(null, "", url);
  }
  app.dataset.section = name;
  $("visitors-view").hidden = name !== "visitors";
  const current = name === "visitors" ? "visitors" : "live";
  for (const a of document.querySelectorAll(".topnav a[data-nav]")) {
    if (a.dataset.nav === current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  setText($("page-heading"), SECTION_HEADINGS[name]);
  if (focus) {
    if (name === "visitors") $("visitors-heading").focus();
    else if (activeId && panes.has(activeId) && (!narrow.matches || app.dataset.view === "pane")) {
      panes.get(activeId).tab.focus();
    } else focusList();
  }
  if (changed) {
    visitors.render();
    render();
  }
}

// The brand and "Live chats" lead to this very page: switch sections instead of reloading it.
const sectionLinks = '.topnav a[data-nav="live"], .topnav a[data-nav="visitors"], .topbar a.brand';
for (const a of document.querySelectorAll(sectionLinks)) {
  a.addEventListener("click", (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return; // new tab
    e.preventDefault();
    showSection(a.dataset.nav === "visitors" ? "visitors" : "chats", { push: true, focus: true });
  });
}
window.addEventListener("popstate", () => showSection(sectionFromUrl(), { focus: true }));
window.addEventListener("hashchange", () => showSection(sectionFromUrl(), { focus: true }));

function counts(name, n, noun) {
  const badge = $(`${name}-count`);
  setText(badge, String(n));
  badge.setAttribute("aria-label", `${n} ${noun}`);
  badge.toggleAttribute("data-nonzero", n > 0);
  $(`${name}-empty`).hidden = n > 0;
}

function canReply(record) {
  if (record.state !== "active" || record.detached) return false;
  return store.isMine(record) || store.user?.role === "admin";
}

function lockDetached(pane) {
  const locked = pane.root.querySelector('[data-slot="locked"]');
  locked.hidden = false;
  setText(locked, "This chat is no longer in your queue (it was accepted elsewhere, closed, or removed).");
  pane.root.querySelector('[data-slot="row"]').hidden = true;
  pane.root.querySelector('[data-slot="hint"]').hidden = true;
  pane.root.querySelector('[data-slot="accept"]').hidden = true;
  pane.root.querySelector('[data-slot="close-conv"]').hidden = true;
}

function alertNewWaiting(record) {
  record.isNew = true;
  setTimeout(() => {
    record.isNew = false;
    refresh();
  }, 10000);
  chime();
  notifyNewChat(record.orgName, record.siteLabel, record.id, () => openPane(record.id));
  announce(`New visitor waiting on ${where(record) || "one of your sites"}.`);
}

function announce(text) {
  const el = $("announcer");
  // Clearing first makes screen readers re-read identical consecutive announcements.
  el.textContent = "";
  setTimeout(() => (el.textContent = text), 50);
}

function globalNotice(text, withLink) {
  const area = $("global-notice");
  const box = document.createElement("div");
  box.className = "toast";
  const span = document.createElement("span");
  span.textContent = text;
  box.append(span);
  if (withLink) {
    const a = document.createElement("a");
    a.href = withLink.href;
    a.textContent = withLink.text;
    box.append(" ", a);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.className = "notice-dismiss";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => box.remove());
  box.append(close);
  area.append(box);
  if (!withLink) setTimeout(() => box.remove(), 8000);
}

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

function showStatus(state) {
  const wasOnline = online;
  online = state === "connected";
  const el = $("conn-status");
  el.className = `conn conn-${state}`;
  setText(el.querySelector(".conn-text"), STATUS_TEXT[state] || state);
  if (wasOnline !== online) {
    for (const id of panes.keys()) panes.get(id).renderPending(outbox.forConversation(id));
    refresh(); // the Visitors view says when it is not updating
  }
}

function showFatal(reason) {
  online = false;
  if (reason === "session") {
    globalNotice("Your session has ended.", { href: "/console/login", text: "Sign in again" });
  } else if (reason === "version") {
    globalNotice("Confide was updated.", { href: window.location.pathname, text: "Reload the console" });
  } else {
    globalNotice("This console cannot connect from this address.", { href: "/console", text: "Open the console" });
  }
}

// ───────────────────────────── keyboard & page events ─────────────────────────────

installKeyboard({
  tabs: $("pane-tabs"),
  order: () => order,
  activeId: () => activeId,
  select,
  hide: hidePane,
  focusList: () => {
    if (section !== "chats") showSection("chats", { push: true });
    if (narrow.matches) app.dataset.view = "list";
    focusList();
  },
});

// Coming back to the tab/window counts as seeing the focused pane.
window.addEventListener("focus", () => activeId && markSeen(activeId));
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && activeId) markSeen(activeId);
});
narrow.addEventListener("change", () => refresh());

const filter = $("site-filter");
if (filter) {
  filter.addEventListener("change", () => {
    siteFilter = filter.value;
    refresh();
  });
}

const soundBtn = $("sound-toggle");
function paintSound() {
  const on = soundEnabled();
  soundBtn.setAttribute("aria-pressed", on ? "true" : "false");
  setText(soundBtn, on ? "Sound on" : "Sound off");
}
soundBtn.addEventListener("click", () => {
  setSoundEnabled(!soundEnabled());
  paintSound();
  chime(); // a preview, and proof that audio is unlocked
});
paintSound();

setupNotifyButton($("notify-offer"), $("notify-enable"));
unlockAudioOnGesture();
setInterval(refresh, 30000); // "waiting 3 min" keeps counting
setInterval(flushOutbox, 5000); // resend anything unacked for RESEND_AFTER_MS
setInterval(() => {
  // Visitors leave the list 2 minutes after their last beacon; time on site ticks.
  if (visitors.expire()) refresh();
  visitors.tick();
}, 1000);
window.addEventListener("pagehide", () => persistPanes());

showSection(sectionFromUrl());

// Expose nothing globally except a debugging hook that carries no secrets.
app.dataset.ready = "1";
socket.start();
