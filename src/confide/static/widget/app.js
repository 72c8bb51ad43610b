// Confide chat app: runs inside the iframe served from our origin (see docs/protocol.md).
// Rule for this file: text from the network or the visitor only ever reaches the DOM through
// textContent, never as HTML.

const $ = (id) => document.getElementById(id);
const CFG = document.body.dataset;
const SITE = CFG.site;
const MAX_TEXT = 4000;
const EMBEDDED = window.parent !== window;

// ---- storage: session-scoped, strictly necessary; falls back to memory when blocked ------------
const store = (() => {
  const key = "confide:" + SITE;
  let mem = null;
  let ss = null;
  try {
    ss = window.sessionStorage;
    ss.setItem(key + ":t", "1");
    ss.removeItem(key + ":t");
  } catch {
    ss = null;
  }
  return {
    load() {
      try {
        return JSON.parse((ss ? ss.getItem(key) : mem) || "null") || {};
      } catch {
        return {};
      }
    },
    save(value) {
      const text = JSON.stringify(value);
      try {
        if (ss) return ss.setItem(key, text);
      } catch {
        ss = null; // quota or a policy change: keep going in memory
      }
      mem = text;
    },
  };
})();

// ---- state -------------------------------------------------------------------------------------
// msgs: [{key, seq?, client_id?, role, name?, text, at, status?}], ordered by seq, unacked last.
const saved = store.load();
const S = {
  token: saved.token || null,
  conv: saved.conv || null, // {id, state, operator:{name}|null, last_seq}
  msgs: (Array.isArray(saved.msgs) ? saved.msgs : []).map(({ tx, ...m }) => m), // tx: per socket
  lastSeq: saved.lastSeq || 0, // highest seq held with no gap below it
  seenByAgent: saved.seenByAgent || 0,
  seenSent: saved.seenSent || 0,
  unread: saved.unread || 0,
  open: !!saved.open,
  announced: saved.announced || 0, // highest seq already reported to the host page
  site: saved.site || null, // {name, greeting, online}
  host: null,
  page: null,
  private: CFG.dnt === "1" || CFG.gpc === "1", // DNT or GPC: do not send the page path
  signals: { dnt: CFG.dnt === "1", gpc: CFG.gpc === "1" }, // + the host page's navigator, on init
  invite: null, // an invitation waiting in the teaser: {text, from}
  invited: saved.invited || null, // the invitation the visitor took up, shown above the transcript
  consent: saved.consent || null, // {request:{id, text, policy_url}, answer}: the open question, as the server said
};

function persist() {
  const { token, conv, lastSeq, seenByAgent, seenSent, unread, open, announced, site, invited, consent } = S;
  // Keep the tail only: sync fills anything older if it is ever needed again.
  const msgs = S.msgs.slice(-200);
  store.save({ token, conv, msgs, lastSeq, seenByAgent, seenSent, unread, open, announced, site, invited, consent });
}

const active = () => !!S.conv && S.conv.state !== "closed";
const visible = () => (S.open || !EMBEDDED) && document.visibilityState === "visible";

function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  return Array.from(crypto.getRandomValues(new Uint8Array(22)), (b) => abc[b & 63]).join("");
}

// ---- talking to the loader on the host page ---------------------------------------------------
function toHost(msg) {
  // Until init arrives we do not know the host origin, so only "ready" (which carries nothing) goes out.
  if (!EMBEDDED || (!S.host && msg.event !== "ready")) return;
  window.parent.postMessage({ confide: 1, ...msg }, S.host || "*");
}

function reportState() {
  toHost({ event: "state", open: S.open, unread: S.unread, active: active(), teaser: teaserHeight() });
}

let initDone;
const initReceived = new Promise((resolve) => (initDone = resolve));

window.addEventListener("message", (e) => {
  if (e.source !== window.parent || !EMBEDDED) return;
  const m = e.data;
  if (!m || m.confide !== 1) return;
  if (m.cmd === "init" && !S.host) {
    // The real sender origin is authoritative; a claimed `host` could be anything.
    S.host = e.origin;
    const page = m.page || {};
    S.page = { path: String(page.path || "/").slice(0, 500), title: String(page.title || "").slice(0, 200) };
    // The host page's navigator, or this frame's own request headers (data-gpc, data-dnt).
    S.signals = {
      dnt: !!(m.signals && m.signals.dnt) || CFG.dnt === "1",
      gpc: !!(m.signals && m.signals.gpc) || CFG.gpc === "1",
    };
    S.private = S.signals.dnt || S.signals.gpc;
    // The loader starts closed with no badge; saying so again could undo a queued Confide.open().
    if (S.open || S.unread || active()) reportState();
    initDone();
    stats.init(m, String(page.search || ""));
  } else if (m.cmd === "open") {
    setOpen(true);
  } else if (m.cmd === "close") {
    setOpen(false);
  } else if (m.cmd === "consent") {
    stats.setConsent(m.consent);
  } else if (m.cmd === "ids") {
    stats.onIds(m);
  } else if (m.cmd === "reply") {
    stats.onReply(m.reply);
  }
});

function firstControl() {
  if (!$("offline-view").hidden) return $("enquiry").hidden ? $("enquiry-sent") : $("q-name");
  return $("composer").hidden ? $("restart") : $("text");
}

function setOpen(open) {
  S.open = open;
  if (open && S.invite) {
    // Taking up the invitation: it stays above the transcript as the team's first words.
    S.invited = S.invite;
    S.invite = null;
    renderInvite();
  }
  if (open) {
    connect(); // the socket opens on first use, not on every page view
    pinned = true;
    requestAnimationFrame(pinToBottom);
    markSeen();
    // Keyboard users land on the first thing to fill in; on touch screens that would pop up the
    // keyboard over the conversation, so leave it.
    if (!matchMedia("(hover: none)").matches) firstControl().focus({ preventScroll: true });
  }
  persist();
  reportState();
}

// ---- socket --------------------------------------------------------------------------------
let ws = null;
let connected = false; // welcome received on the current socket
let attempt = 0;
let retryTimer = null;
let pingTimer = null;
let fatal = false;
let opening = false; // an `open` is in flight
let everConnected = false;
let connecting = false;

function send(frame) {
  if (ws && connected) ws.send(JSON.stringify(frame));
  return connected;
}

async function connect() {
  if (ws || fatal || connecting) return;
  connecting = true;
  clearTimeout(retryTimer);
  // Wait briefly for the host's init so hello can carry host and page, then go anyway.
  await Promise.race([initReceived, new Promise((r) => setTimeout(r, 1000))]);
  connecting = false;
  if (ws) return;
  const sock = (ws = new WebSocket(CFG.ws));
  sock.onopen = () => {
    const hello = { type: "hello", v: 1 };
    if (S.token) hello.token = S.token;
    if (S.host || !EMBEDDED) hello.host = S.host || location.origin;
    if (S.page && !S.private) hello.page = S.page;
    // GPC is an opt-out for this visitor and any person they become (R13, R14).
    if (S.signals.gpc) hello.signals = { gpc: true };
    sock.send(JSON.stringify(hello));
  };
  sock.onmessage = (e) => {
    let f;
    try {
      f = JSON.parse(e.data);
    } catch {
      return;
    }
    if (f && handlers[f.type]) handlers[f.type](f);
  };
  sock.onclose = (e) => {
    if (ws !== sock) return;
    ws = null;
    connected = false;
    opening = false;
    S.msgs.forEach((m) => delete m.tx); // nothing is in flight on a dead socket
    clearInterval(pingTimer);
    settleAll(); // an answer that never came: the visitor may try again
    // 4400/4403/4404: this site cannot be served here; retrying would only repeat the refusal.
    if (e.code === 4400 || e.code === 4403 || e.code === 4404) return unavailable();
    if (!everConnected && !active()) S.site = { ...(S.site || {}), online: false }; // enquiry form still works over HTTP
    render();
    // Nobody is chatting: stay quiet until the panel is opened again.
    if (S.open || active() || outbox().length) scheduleReconnect();
  };
}

function scheduleReconnect() {
  // 0.5 s doubling to 15 s, ±50 % jitter so a restarted server is not hit by everyone at once.
  const base = Math.min(15000, 500 * 2 ** attempt++);
  retryTimer = setTimeout(connect, base * (0.5 + Math.random()));
}

function unavailable() {
  fatal = true;
  S.site = { ...(S.site || {}), online: false };
  notice("Chat isn't available on this page right now.", 0);
  render();
}

function startHeartbeat() {
  // Proxies drop idle sockets; a ping every 25 s keeps ours alive and detects a dead one.
  clearInterval(pingTimer);
  let waiting = false;
  pingTimer = setInterval(() => {
    if (waiting && ws) return ws.close();
    waiting = send({ type: "ping" });
    flushOutbox(10000); // safety net: an ack that never came
    // No pong within 10 s: the socket is dead even if the browser has not noticed.
    setTimeout(() => waiting && ws && ws.close(), 10000);
  }, 25000);
  handlers.pong = () => (waiting = false);
}

window.addEventListener("online", () => {
  if (!(S.open || active() || outbox().length)) return;
  // After a network change the old socket may be silently dead: replace it now rather than on
  // the next heartbeat (its onclose is detached, so it cannot schedule a second reconnect).
  if (ws) {
    const old = ws;
    old.onclose = null;
    ws = null;
    connected = false;
    opening = false;
    S.msgs.forEach((m) => delete m.tx);
    clearInterval(pingTimer);
    try { old.close(); } catch {}
  }
  attempt = 0;
  clearTimeout(retryTimer);
  connect();
});

// ---- server frames -----------------------------------------------------------------------------
const handlers = {
  welcome(f) {
    connected = everConnected = true;
    attempt = 0;
    // A null token means the server did not recognise ours: drop it, a new one comes with `open`.
    if ("token" in f) S.token = f.token || null;
    S.site = f.site || S.site;
    startHeartbeat();
    const had = S.conv;
    if (f.conversation) {
      setConversation(f.conversation);
    } else if (had && had.state !== "closed") {
      had.state = "closed"; // the server has no open conversation for us any more
    }
    if (S.conv) send({ type: "sync", conversation: S.conv.id, after: S.lastSeq, ref: "sync" });
    flushOutbox();
    persist();
    render();
  },
  conversation(f) {
    opening = false;
    if (f.token) S.token = f.token; // a first-time visitor's token arrives with their first conversation
    if (f.ref === "rate") settle("rate");
    setConversation(f.conversation);
    flushOutbox();
    persist();
    render();
  },
  ack(f) {
    const m = S.msgs.find((x) => x.client_id === f.client_id);
    if (outbox().length <= 1 && $("notice").dataset.text === ERRORS.rate_limited) $("notice").hidden = true;
    if (m) {
      Object.assign(m, { seq: f.seq, at: f.at, status: "sent" });
      m.key = "s" + f.seq;
      // The server kept a different text (a card number masked): show what was kept, and why.
      if (f.notice === "card_masked" && typeof f.text === "string") Object.assign(m, { text: f.text, notice: f.notice });
    }
    if (f.seq > S.lastSeq + 1 && !S.msgs.some((x) => x.seq === f.seq - 1)) requestSync();
    afterMerge();
  },
  message(f) {
    if (!S.conv || f.conversation !== S.conv.id) return;
    const gap = f.seq > S.lastSeq + 1;
    merge(f);
    if (f.author && f.author.role === "agent") showTyping(false);
    if (gap) requestSync();
    afterMerge();
  },
  history(f) {
    syncPending = false;
    if (!S.conv || f.conversation !== S.conv.id) return;
    (f.messages || []).forEach(merge);
    afterMerge();
  },
  typing(f) {
    if (S.conv && f.conversation === S.conv.id && f.role === "agent") showTyping(f.typing);
  },
  seen(f) {
    if (!S.conv || f.conversation !== S.conv.id || f.role !== "agent") return;
    S.seenByAgent = Math.max(S.seenByAgent, f.seq);
    persist();
    renderMessages();
  },
  presence(f) {
    S.site = { ...(S.site || {}), online: !!f.online };
    persist();
    render();
  },
  error(f) {
    onError(f);
  },
  consent(f) {
    if (S.conv && f.conversation === S.conv.id) onConsent(f);
  },
  details_saved(f) {
    if (f.ref === "details") detailsSaved();
  },
  transcript_sent(f) {
    if (f.ref === "transcript") transcriptSent();
  },
  pong() {},
};

function setConversation(c) {
  if (!c) return;
  if (S.conv && S.conv.id !== c.id) resetTranscript(); // a new conversation starts a fresh transcript
  // Pending messages were never delivered to this conversation: all of them must go out.
  if (!S.conv || S.conv.id !== c.id) S.msgs.forEach((m) => delete m.tx);
  S.conv = {
    id: c.id, state: c.state, operator: c.operator ? { name: c.operator.name } : null, last_seq: c.last_seq, rated: !!c.rated,
  };
}

function resetTranscript() {
  // Unsent messages are kept: they were typed for the conversation that is starting now.
  S.msgs = S.msgs.filter((m) => m.status === "sending" && !m.seq);
  S.invited = null;
  renderInvite();
  S.lastSeq = S.seenByAgent = S.seenSent = S.announced = S.unread = 0;
  S.consent = null;
  renderConsent(); // first: the card may sit inside a message that is about to go
  $("msgs").textContent = "";
  rendered.clear();
  resetLeadForms();
}

// Insert or update one server message, keyed by seq, matching our own unacked copy by client_id.
function merge(f) {
  if (typeof f.seq !== "number") return;
  let m = S.msgs.find((x) => x.seq === f.seq) || (f.client_id && S.msgs.find((x) => x.client_id === f.client_id && !x.seq));
  const role = (f.author && f.author.role) || "system";
  if (!m) {
    m = { client_id: f.client_id, role };
    S.msgs.push(m);
  }
  Object.assign(m, { key: "s" + f.seq, seq: f.seq, text: String(f.text ?? ""), at: f.at, name: f.author && f.author.name });
  if (role === "visitor" && m.status !== "seen") m.status = "sent";
}

function afterMerge() {
  S.msgs.sort((a, b) => (a.seq || Infinity) - (b.seq || Infinity));
  // lastSeq is the gap-free watermark, so `sync after lastSeq` always fills holes.
  const seqs = new Set(S.msgs.map((m) => m.seq));
  while (seqs.has(S.lastSeq + 1)) S.lastSeq++;
  announceNew();
  markSeen();
  persist();
  renderMessages();
  reportState();
}

// Tell the host page (metadata only) about messages it has not heard of, and count unread ones.
function announceNew() {
  for (const m of S.msgs) {
    if (!m.seq || m.seq <= S.announced || m.role === "system") continue;
    S.announced = m.seq;
    toHost({ event: "message", from: m.role === "agent" ? "agent" : "visitor", at: m.at });
    if (m.role === "agent" && !visible()) S.unread++;
  }
}

function markSeen() {
  if (!visible() || !S.conv) return;
  S.unread = 0;
  const last = S.msgs.filter((m) => m.role === "agent" && m.seq).pop();
  if (last && last.seq > S.seenSent && send({ type: "seen", conversation: S.conv.id, seq: last.seq })) {
    S.seenSent = last.seq;
  }
}

let syncPending = false;
function requestSync() {
  // One sync at a time; the history reply covers every later gap too.
  if (syncPending || !S.conv) return;
  syncPending = send({ type: "sync", conversation: S.conv.id, after: S.lastSeq, ref: "sync" });
  if (syncPending) setTimeout(() => (syncPending = false), 3000);
}

function onError(f) {
  // A sync for a conversation the server no longer shows us is harmless: keep what we have.
  if (f.ref === "sync") return;
  // Answers to the visitor's consent, rating and details frames are shown where they were given.
  if (LEAD_REFS.includes(f.ref)) return leadFailed(f);
  if (f.code === "not_found" && S.conv) {
    // The conversation is gone (e.g. expired): start a new one and resend what was pending there.
    resetConversation();
    flushOutbox();
    render();
    return;
  }
  const m = f.client_id && S.msgs.find((x) => x.client_id === f.client_id && !x.seq);
  // Transient refusals rarely name the frame (a rate-limited frame is not even parsed): retry
  // whatever is still unacked, a little later.
  const retry = f.code === "rate_limited" || f.code === "internal";
  if (f.code === "rate_limited") {
    settleAll(); // a refused frame is not parsed, so no ref comes back: let the visitor try again
    // The server refuses every frame for a second after a refusal; resend all unacked messages,
    // in the order they were typed, once that has passed (later ones wait behind them).
    S.msgs.forEach((m) => delete m.tx);
    pausedUntil = Date.now() + RATE_PAUSE_MS;
    retryOutboxSoon(RATE_PAUSE_MS);
  } else if (retry) retryOutboxSoon();
  else if (m) m.status = "failed"; // the server refused this text; resending would fail again
  if (f.code === "invalid_state" && S.conv) {
    S.conv.state = "closed";
    if (m) m.status = "failed";
  }
  if (f.code === "origin_not_allowed") return unavailable();
  notice(ERRORS[f.code] || "Something went wrong. Please try again.");
  persist();
  render();
}

const ERRORS = {
  rate_limited: "You're sending messages quickly — we'll retry in a moment.",
  text_too_long: "That message is too long. Please keep it under 4,000 characters.",
  empty_text: "Please type a message first.",
  invalid_state: "This chat has ended.",
  internal: "We hit a snag. Retrying…",
  frame_too_large: "That message is too long.",
};

function resetConversation() {
  resetTranscript();
  S.conv = null;
}

// ---- sending -----------------------------------------------------------------------------------
function outbox() {
  return S.msgs.filter((m) => m.role === "visitor" && !m.seq && m.status === "sending");
}

// Send unacked messages with their original client_id (the server de-duplicates on it). `tx` is
// when a message last went out on the current socket: new ones always go, ones already sent go
// again only once older than `resendAfter` ms (a refused or lost frame gets no ack). At most
// OUTBOX_BATCH per call, to stay inside the server's burst allowance.
const OUTBOX_BATCH = 10;
const RATE_PAUSE_MS = 2000; // longer than the server's 1 s cool-down after a refusal
let outboxTimer = null;
let pausedUntil = 0;
function flushOutbox(resendAfter = Infinity) {
  const pending = outbox();
  if (!pending.length || !connected) return;
  if (Date.now() < pausedUntil) return retryOutboxSoon(pausedUntil - Date.now());
  if (!active()) {
    if (!opening) opening = send(stats.visit() ? { type: "open", visit: stats.visit() } : { type: "open" });
    return;
  }
  const now = Date.now();
  let budget = OUTBOX_BATCH;
  for (const m of pending) {
    if (m.tx && now - m.tx < resendAfter) continue;
    if (!budget--) return retryOutboxSoon(1000);
    send({ type: "send", conversation: S.conv.id, client_id: m.client_id, text: m.text });
    m.tx = now;
  }
}

function retryOutboxSoon(ms = 2000) {
  if (outboxTimer) return;
  outboxTimer = setTimeout(() => {
    outboxTimer = null;
    flushOutbox(1500);
  }, ms);
}

function submitText() {
  const box = $("text");
  const text = box.value.trim();
  if (!text) return;
  if (text.length > MAX_TEXT) return notice(ERRORS.text_too_long);
  const m = { key: randomId(), role: "visitor", text, at: new Date().toISOString(), status: "sending" };
  m.client_id = m.key;
  S.msgs.push(m);
  box.value = "";
  onDraft(true);
  stopTyping();
  persist();
  renderMessages();
  if (connected) flushOutbox();
  else connect();
}

// Typing signal: on/off only, never the draft. At most one `true` per 2 s, `false` after 3 s idle.
let typingOn = false;
let typingSentAt = 0;
let idleTimer = null;
function onDraft(cleared) {
  const box = $("text");
  box.style.height = "auto";
  box.style.height = Math.min(box.scrollHeight, 140) + "px";
  const n = box.value.length;
  const counter = $("counter");
  counter.hidden = n < MAX_TEXT - 500;
  counter.textContent = n.toLocaleString() + " / " + MAX_TEXT.toLocaleString();
  counter.classList.toggle("over", n >= MAX_TEXT);
  if (cleared || !active()) return;
  const now = Date.now();
  if (!typingOn || now - typingSentAt > 2000) {
    if (send({ type: "typing", conversation: S.conv.id, typing: true })) {
      typingOn = true;
      typingSentAt = now;
    }
  }
  clearTimeout(idleTimer);
  idleTimer = setTimeout(stopTyping, 3000);
}

function stopTyping() {
  clearTimeout(idleTimer);
  if (typingOn && S.conv) send({ type: "typing", conversation: S.conv.id, typing: false });
  typingOn = false;
}

// ---- rendering ---------------------------------------------------------------------------------
const rendered = new Map(); // key -> <li>
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text != null) node.textContent = text;
  return node;
}

function statusLabel(m) {
  if (m.status === "failed") return "Not sent";
  if (!m.seq) return "Sending…";
  return m.seq <= S.seenByAgent ? "Seen" : "Sent";
}

// Every element of a message is built once and then updated in place: the transcript is an
// aria-live log, and re-creating nodes would make screen readers read old messages again.
function buildMessage(m) {
  const li = el("li", "msg");
  const meta = el("div", "meta");
  const tick = el("span", "tick");
  const retry = el("button", "link", "Retry");
  retry.type = "button";
  retry.addEventListener("click", () => retryMessage(m.client_id));
  meta.append(el("time"), tick, retry);
  const note = el("p", "msg-note", CARD_NOTE);
  note.hidden = true;
  li.append(el("span", "who sr-only"), el("span", "name"), el("div", "bubble"), meta, note);
  return li;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// Consecutive messages from one author within five minutes form a group: the name shows above
// the first, the time and status below the last.
function sameGroup(a, b) {
  return !!a && !!b && a.role === b.role && (a.name || "") === (b.name || "") &&
    Math.abs(Date.parse(b.at) - Date.parse(a.at)) < 300000;
}

function fillMessage(li, m, prev, next) {
  const mine = m.role === "visitor";
  const first = !sameGroup(prev, m);
  const last = !sameGroup(m, next) || !m.seq || m.status === "failed";
  const ask = isConsentQuestion(m); // shown as the consent card instead of a plain line
  li.className = "msg " + m.role + (first ? " first" : "") + (last ? " last" : "") +
    (m.status === "failed" ? " failed" : "") + (ask ? " ask" : "");
  // The server's record of a consent answer speaks of "the visitor": the card says it to them.
  li.hidden = isConsentAnswer(m);
  const [who, name, bubble, meta, note] = li.children;
  const [time, tick, retry] = meta.children;
  note.hidden = m.notice !== "card_masked";
  setText(who, ask ? "" : mine ? "You said:" : (m.name || (m.role === "agent" ? "Agent" : "Notice")) + " said:");
  setText(name, !mine && m.role !== "system" && first ? m.name || "Agent" : "");
  setText(bubble, m.text);
  setText(time, m.at ? timeFmt.format(new Date(m.at)) : "");
  if (m.at) time.dateTime = m.at;
  const st = mine ? statusLabel(m) : "";
  tick.hidden = !mine;
  tick.className = "tick " + st.replace("…", "").toLowerCase().replace(" ", "-");
  setText(tick, st);
  retry.hidden = m.status !== "failed";
}

function retryMessage(clientId) {
  const m = S.msgs.find((x) => x.client_id === clientId);
  if (!m) return;
  m.status = "sending";
  delete m.tx;
  persist();
  renderMessages();
  if (connected) flushOutbox();
  else connect();
}

// Follow new messages while the visitor is at the bottom; leave them alone when they scrolled up.
let pinned = true;
function pinToBottom() {
  if (pinned) $("log").scrollTop = $("log").scrollHeight;
}

function renderMessages() {
  const list = $("msgs");
  let prev = null;
  S.msgs.forEach((m, i) => {
    let li = rendered.get(m.key);
    if (!li) {
      // An acked message changes key from its client_id to its seq: reuse its element.
      li = (m.client_id && rendered.get(m.client_id)) || buildMessage(m);
      rendered.delete(m.client_id);
      rendered.set(m.key, li);
    }
    fillMessage(li, m, prev, S.msgs[i + 1]);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    prev = m;
  });
  placeConsent(); // before trimming: the card must not leave with a removed element
  while (list.children.length > S.msgs.length) list.lastElementChild.remove();
  $("intro").hidden = S.msgs.length > 0 || !!S.invited;
  $("app").classList.toggle("chatting", S.msgs.length > 0);
  pinToBottom();
}

let typingTimer = null;
function showTyping(on) {
  const t = $("typing");
  t.hidden = !on;
  $("typing-text").textContent = ((S.conv && S.conv.operator && S.conv.operator.name) || "Agent") + " is typing…";
  clearTimeout(typingTimer);
  // A lost typing:false must not leave the indicator up for ever.
  if (on) typingTimer = setTimeout(() => (t.hidden = true), 8000);
}

let noticeTimer = null;
function notice(text, ms = 6000) {
  const n = $("notice");
  n.dataset.text = text;
  n.textContent = text;
  n.hidden = false;
  clearTimeout(noticeTimer);
  if (ms) noticeTimer = setTimeout(() => (n.hidden = true), ms);
}

function render() {
  const site = S.site || {};
  if (site.name) {
    $("site-name").textContent = site.name;
    document.title = "Chat with " + site.name;
  }
  if (site.greeting != null) $("greeting").textContent = site.greeting;
  const online = !!site.online;
  const known = connected || S.site;
  const op = S.conv && S.conv.state === "active" && S.conv.operator && S.conv.operator.name;
  $("status").className = "status " + (!known ? "" : online ? "on" : "off");
  $("status-text").textContent = !connected && !S.site ? "Connecting…"
    : op ? op + " is here to help"
    : online ? "Online — we usually reply in minutes"
    : "Offline";
  $("status-text").title = $("status-text").textContent; // shortened to one line while chatting

  const closed = !!S.conv && S.conv.state === "closed";
  // Offline visitors with no conversation in progress get a form instead of a dead chat.
  const offline = known && !online && !active() && !S.msgs.some((m) => m.status === "sending");
  const switching = $("chat-view").hidden !== offline;
  const focusLost = switching && (document.activeElement === document.body ||
    (offline ? $("chat-view") : $("offline-view")).contains(document.activeElement));
  // A draft typed just as the team went offline is not lost: it becomes the enquiry's message.
  if (switching && offline && !$("q-message").value) $("q-message").value = $("text").value.trim();
  $("chat-view").hidden = offline;
  $("offline-view").hidden = !offline;
  // The view changed under the visitor's focus (e.g. we learnt we are offline): follow it.
  if (focusLost && S.open && document.hasFocus()) firstControl().focus({ preventScroll: true });
  $("end").hidden = !active();
  $("ended").hidden = !closed;
  $("composer").hidden = closed;
  $("details-offer").hidden = !active();
  if (!active()) $("confirm").hidden = true;
  if (closed) showTyping(false);
  renderMessages();
  renderConsent();
  renderRating();
}

// ---- lead capture: consent, rating, contact details (docs/protocol.md) ----------------------------
// Each of these frames goes out with its kind as `ref`; the reply (or an error) with that ref
// settles it. Until then its buttons are aria-disabled (not disabled, which would drop the focus)
// and a second click does nothing: one click, one frame.
const LEAD_REFS = ["consent", "rate", "details", "transcript"];
const LEAD_ERRORS = { consent: "consent-error", rate: "rate-error", details: "d-error", transcript: "transcript-error" };
const OFFLINE = "You're offline. Please try again in a moment.";
const CARD_NOTE = "We removed a card number from your message. Please never share card details in chat.";
const busy = new Set();

function formError(id, text) {
  $(id).textContent = text || "";
  $(id).hidden = !text;
}

function leadSend(kind, frame) {
  if (busy.has(kind)) return false;
  if (!S.conv || !send({ ...frame, conversation: S.conv.id, ref: kind })) {
    formError(LEAD_ERRORS[kind], OFFLINE);
    return false;
  }
  formError(LEAD_ERRORS[kind], "");
  busy.add(kind);
  renderBusy();
  return true;
}

function settle(kind) {
  busy.delete(kind);
  renderBusy();
}

function settleAll() {
  busy.clear();
  renderBusy();
}

function renderBusy() {
  const controls = {
    consent: ["consent-yes", "consent-no", "consent-withdraw"], rate: ["rate-send"], details: ["details-send"],
    transcript: ["transcript-send"],
  };
  for (const [kind, ids] of Object.entries(controls)) {
    ids.forEach((id) => $(id).setAttribute("aria-disabled", String(busy.has(kind))));
  }
}

function leadFailed(f) {
  settle(f.ref);
  // Transient failures have generic words; the others carry a readable reason from the server.
  const text = f.code === "internal" || !f.message ? "Something went wrong. Please try again." : f.message;
  if (f.ref === "details") return detailsFailed(text);
  formError(LEAD_ERRORS[f.ref], text);
}

function siteName() {
  return (S.site && S.site.name) || $("site-name").textContent;
}

// -- consent ---------------------------------------------------------------------------------------
const CONSENT_LINES = {
  granted: () => "You agreed to share your details with " + siteName(),
  denied: () => "You chose not to share your details. You can keep chatting.",
  withdrawn: () => "You withdrew your consent to share your details with " + siteName() + ".",
};

function isConsentQuestion(m) {
  return m.role === "system" && !!S.consent && m.client_id === "consent-q-" + S.consent.request.id;
}

function isConsentAnswer(m) {
  return m.role === "system" && /^consent-a-/.test(m.client_id || "");
}

function onConsent(f) {
  if (f.ref === "consent") settle("consent");
  const before = S.consent ? S.consent.answer : null;
  const r = f.request;
  S.consent = r && typeof r.id === "string"
    ? { request: { id: r.id, text: String(r.text ?? ""), policy_url: r.policy_url || null }, answer: f.answer || null }
    : null;
  persist();
  renderMessages(); // the question's line becomes the card
  renderConsent();
  const after = S.consent && S.consent.answer;
  if (after && after !== before) $("consent-live").textContent = CONSENT_LINES[after]();
}

// Only web addresses become links: a misconfigured policy URL must not turn into a script.
function webUrl(u) {
  try {
    const url = new URL(String(u), location.href); // relative: our own pages (/policy)
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

function renderConsent() {
  const c = S.consent;
  const card = $("consent");
  placeConsent();
  card.hidden = !c;
  if (!c) return;
  card.dataset.answer = c.answer || "";
  const asking = !c.answer || !CONSENT_LINES[c.answer];
  const hadFocus = card.contains(document.activeElement);
  $("consent-ask").hidden = !asking;
  $("consent-done").hidden = asking;
  setText($("consent-text"), c.request.text);
  const url = webUrl(c.request.policy_url);
  $("consent-policy").hidden = !url;
  if (url) $("consent-policy").href = url;
  if (!asking) setText($("consent-state"), CONSENT_LINES[c.answer]());
  $("consent-withdraw").hidden = c.answer !== "granted";
  // A question waiting for an answer is what the visitor must see, wherever they had scrolled.
  if (asking && card.dataset.shown !== c.request.id) {
    card.dataset.shown = c.request.id;
    requestAnimationFrame(() => card.scrollIntoView({ block: "nearest" }));
  }
  // The button just pressed went away: keep the keyboard in the card.
  if (hadFocus && !card.contains(document.activeElement)) $(asking ? "consent-yes" : "consent-done").focus();
}

// The card takes the place of its question's line in the transcript (or ends the log until that
// line has arrived).
function placeConsent() {
  const card = $("consent");
  const m = S.consent && S.msgs.find(isConsentQuestion);
  const home = (m && rendered.get(m.key)) || $("log");
  if (card.parentNode !== home) home.append(card);
}

function answerConsent(answer) {
  if (S.consent) leadSend("consent", { type: "consent", request: S.consent.request.id, answer });
}

// -- rating ----------------------------------------------------------------------------------------
function renderRating() {
  const c = S.conv;
  // Only a closed chat with something in it can be rated.
  const can = !!c && c.state === "closed" && (S.lastSeq > 0 || c.last_seq > 0);
  const hadFocus = $("rate").contains(document.activeElement);
  $("rate").hidden = !can || c.rated;
  $("rate-thanks").hidden = !can || !c.rated;
  if (hadFocus && !$("rate-thanks").hidden) $("rate-thanks").focus();
  $("transcript").hidden = !can || !$("transcript-done").hidden;
  if (!can) $("transcript-done").hidden = true;
}

// -- a copy of the chat by email (sent at once; the address is not kept) -----------------------
function submitTranscript(e) {
  e.preventDefault();
  const email = $("t-email").value.trim();
  if (!EMAIL.test(email)) {
    formError("transcript-error", "Please enter your email address, like name@example.com.");
    return $("t-email").focus();
  }
  leadSend("transcript", { type: "transcript", email });
}

function transcriptSent() {
  settle("transcript");
  $("transcript-done").textContent = `We've sent a copy to ${$("t-email").value.trim()}.`;
  $("transcript").hidden = true;
  $("transcript-done").hidden = false;
  $("transcript-done").focus();
}

function litStars(n) {
  $("stars").querySelectorAll(".star").forEach((s, i) => s.classList.toggle("lit", i < n));
}

function pickedScore() {
  const r = $("rate").querySelector("input[name=score]:checked");
  return r ? Number(r.value) : 0;
}

function submitRating(e) {
  e.preventDefault();
  const score = pickedScore();
  if (!score) {
    formError("rate-error", "Please choose from 1 to 5 stars.");
    $("rate").querySelector("input[name=score]").focus();
    return;
  }
  const frame = { type: "rate", score };
  const comment = $("rate-comment").value.trim().slice(0, 1000);
  if (comment) frame.comment = comment;
  leadSend("rate", frame);
}

// -- contact details -------------------------------------------------------------------------------
const DETAILS = ["name", "email", "phone", "postcode"];

function setDetails(show) {
  const sheet = $("details");
  if (show === !sheet.hidden) return;
  if (show) setPrivacy(false);
  sheet.hidden = !show;
  $("app").classList.toggle("details-open", show);
  $("details-open").setAttribute("aria-expanded", String(show));
  if (show) {
    $("details-form").hidden = false;
    $("details-done").hidden = true;
    $("d-name").focus();
  } else if (!$("details-offer").hidden) {
    $("details-open").focus();
  }
}

function readDetails() {
  const v = {};
  for (const k of DETAILS) if ($("d-" + k).value.trim()) v[k] = $("d-" + k).value.trim();
  DETAILS.forEach((k) => fieldError("d-" + k, ""));
  formError("d-error", "");
  const ok = [
    fieldError("d-email", v.email && !EMAIL.test(v.email) ? "That doesn't look like an email address." : ""),
    fieldError("d-phone", v.phone && !PHONE.test(v.phone) ? "That doesn't look like a phone number." : ""),
  ];
  if (!ok.every(Boolean)) return $(ok[0] ? "d-phone" : "d-email").focus();
  if (!Object.keys(v).length) {
    formError("d-error", "Please fill in at least one detail.");
    return $("d-name").focus();
  }
  return v;
}

function submitDetails(e) {
  e.preventDefault();
  const values = readDetails();
  if (values) leadSend("details", { type: "details", ...values });
}

// The server names the field it refused ("That email address is not valid…"): show it there.
function detailsFailed(text) {
  const field = /e-?mail/i.test(text) ? "email" : /phone/i.test(text) ? "phone"
    : /postcode|zip/i.test(text) ? "postcode" : null;
  if (!field) return formError("d-error", text);
  fieldError("d-" + field, text);
  $("d-" + field).focus();
}

function detailsSaved() {
  settle("details");
  $("details-form").hidden = true;
  $("details-done").hidden = false;
  $("details-done").focus();
}

// -- the offline form's consent box: its exact words go with it, as the evidence of what was agreed.
function enquiryConsent() {
  return { consent: $("q-consent").checked, consent_text: $("q-consent-label").textContent.replace(/\s+/g, " ").trim() };
}

function resetLeadForms() {
  settleAll();
  $("rate").reset();
  litStars(0);
  formError("rate-error", "");
  $("transcript").reset();
  formError("transcript-error", "");
  $("transcript-done").hidden = true;
  formError("consent-error", "");
  $("details-form").reset();
  setDetails(false);
}

function wireLeads() {
  $("consent-yes").addEventListener("click", () => answerConsent("granted"));
  $("consent-no").addEventListener("click", () => answerConsent("denied"));
  $("consent-withdraw").addEventListener("click", () => answerConsent("withdrawn"));
  $("rate").addEventListener("submit", submitRating);
  $("transcript").addEventListener("submit", submitTranscript);
  $("rate").addEventListener("change", () => {
    litStars(pickedScore());
    formError("rate-error", "");
  });
  $("stars").querySelectorAll(".star").forEach((s, i) => s.addEventListener("mouseenter", () => litStars(i + 1)));
  $("stars").addEventListener("mouseleave", () => litStars(pickedScore()));
  $("details-open").addEventListener("click", () => setDetails($("details").hidden));
  $("details-cancel").addEventListener("click", () => setDetails(false));
  $("details-back").addEventListener("click", () => setDetails(false));
  $("details-form").addEventListener("submit", submitDetails);
  renderBusy();
}

// ---- enquiry form (offline) ------------------------------------------------------------------
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const PHONE = /^\+?[\d\s().-]{6,}$/;

function fieldError(id, text) {
  const input = $(id);
  const err = $(id + "-error");
  err.textContent = text || "";
  err.hidden = !text;
  input.setAttribute("aria-invalid", text ? "true" : "false");
  if (text) input.setAttribute("aria-describedby", id + "-error");
  else input.removeAttribute("aria-describedby");
  return !text;
}

function validateEnquiry() {
  const name = $("q-name").value.trim();
  const contact = $("q-contact").value.trim();
  const message = $("q-message").value.trim();
  const ok = [
    fieldError("q-name", name ? "" : "Please tell us your name."),
    fieldError("q-contact", !contact ? "Please add an email or phone number."
      : EMAIL.test(contact) || PHONE.test(contact) ? "" : "That doesn't look like an email or phone number."),
    fieldError("q-message", message ? "" : "Please write a message."),
  ];
  const bad = ["q-name", "q-contact", "q-message"][ok.indexOf(false)];
  if (bad) $(bad).focus();
  return bad ? null : { name, contact, message };
}

function errorDetail(body) {
  const d = body && body.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((x) => (x && x.msg) || "").filter(Boolean).join(" ");
  return "";
}

async function submitEnquiry(e) {
  e.preventDefault();
  const data = validateEnquiry();
  if (!data) return;
  const btn = $("q-submit");
  const err = $("q-error");
  err.hidden = true;
  btn.disabled = true;
  btn.textContent = "Sending…";
  try {
    const res = await fetch(CFG.enquiry, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "omit",
      body: JSON.stringify({ site: SITE, host: S.host || location.origin, ...data, ...enquiryConsent() }),
    });
    if (!res.ok) {
      const body = await res.json().catch(() => null);
      throw new Error(errorDetail(body) || "We couldn't send your message. Please try again.");
    }
    $("enquiry").hidden = true;
    $("enquiry-sent").hidden = false;
    $("enquiry-sent").focus();
  } catch (ex) {
    err.textContent = ex instanceof TypeError ? "You seem to be offline. Please try again." : ex.message;
    err.hidden = false;
  } finally {
    btn.disabled = false;
    btn.textContent = "Send message";
  }
}

// ---- visit statistics (docs/tracking.md) --------------------------------------------------------
// The policy lives here, in our frame; the loader only keeps the identifiers on the host page
// (cookie _cfv, sessionStorage _cfvisit) when asked, and sends these beacons from the host's
// origin. Nothing is recorded with Do Not Track or Global Privacy Control, nothing in an opt-in
// site's mode without consent, nothing once consent is refused, nothing when storage is blocked.
const IDLE = 30 * 60 * 1000; // a visit ends after 30 minutes without activity
const ID_RE = /^[A-Za-z0-9_-]{16,40}$/;
const CAMPAIGN_KEY = /^(utm_|ref$|source$)/i; // the only query keys that leave the page

const stats = (() => {
  let cfg = null; // {name, consent_mode, invite_rules}
  let consent = null; // "granted" | "denied" | null: the site's CMP (or its own banner) says
  let on = false; // recording this page view
  let asking = false; // waiting for the loader's identifiers
  let V = null; // the visit: {id, at (last beacon), n (page views so far), s (site), inv}
  let cfv = null; // the visitor cookie's value
  let ping = 15000;
  let lastPing = 0;
  let url = "/";
  let referrer = null;
  let visibleMs = 0;
  let since = document.visibilityState === "visible" ? Date.now() : 0;

  const seconds = () => Math.floor((visibleMs + (since ? Date.now() - since : 0)) / 1000);

  function allowed() {
    return !!cfg && !S.signals.dnt && !S.signals.gpc &&
      (consent === "granted" || (consent !== "denied" && cfg.consent_mode === "notice"));
  }

  // Cookieless sites (R21): nothing is stored on the device; the server works out the visitor
  // and the visit, and tells us only this page's number (V.seq) for the pings.
  const cookieless = () => !!cfg && cfg.tracking_identity === "cookieless";
  // UK statistics exception (R12): before consent, one anonymous count per page (no id, nothing
  // stored), unless the visitor objected: a marker in this frame's own storage, which the
  // browser keeps per top-level site, so an objection holds on this site only.
  const OBJECTION = "confide.stats_objection";
  let objected = (() => {
    try {
      return localStorage.getItem(OBJECTION) === "1";
    } catch {
      return false; // storage blocked: an objection then lasts for the page
    }
  })();
  let counted = false;
  const anonymous = () => !!cfg && cfg.uk_stats === true && consent === null && !S.signals.dnt && !S.signals.gpc;

  function countAnonymously() {
    if (on || counted || objected || !anonymous()) return;
    counted = true;
    const events = [{ type: "pageview", url: (S.page && S.page.path) || "/", ts: Date.now() }];
    toHost({ event: "beacon", body: JSON.stringify({ site: SITE, visit: null, visitor: null, events }) });
  }

  function object() {
    objected = true;
    try {
      localStorage.setItem(OBJECTION, "1");
    } catch {
      // storage blocked: the objection holds for this page only
    }
    renderPrivacy();
    $("privacy-title").focus();
  }
  const seq = () => (cookieless() ? V.seq || 0 : V.n);

  function body(ev) {
    const ids = cookieless() ? { visit: null, visitor: null } : { visit: V.id, visitor: cfv };
    return JSON.stringify({
      site: SITE, ...ids, consent: consent === "granted" ? "granted" : null, events: [ev],
    });
  }

  function keep() {
    if (!cookieless()) toHost({ event: "ids", cfv, visit: JSON.stringify(V) });
  }

  // The leave beacon, ready for the loader to send the moment the page is hidden or left.
  function armLeave() {
    if (on) toHost({ event: "beacon", leave: true, body: body({ type: "leave", seq: seq(), seconds: seconds(), ts: Date.now() }) });
  }

  function beacon(ev) {
    V.at = ev.ts = Date.now();
    keep();
    toHost({ event: "beacon", body: body(ev) });
    armLeave();
  }

  function pageview(renew) {
    if (renew || !V) V = { id: visitId(), n: 0, s: SITE };
    const first = V.n === 0 && !renew; // a visit renewed after a pause was not referred
    V.n += 1;
    V.seq = 0; // cookieless: until the server's reply numbers this page (pings of 0 are ignored)
    lastPing = Date.now();
    beacon({ type: "pageview", url, title: (S.page && S.page.title ? S.page.title : "").slice(0, 200), referrer: first ? referrer : null });
    renderPrivacy();
  }

  function stop() {
    const was = on || asking;
    on = asking = false;
    V = null;
    toHost({ event: "beacon", leave: true, body: 0 }); // no leave beacon either
    if (was || consent === "denied" || S.private) toHost({ event: "ids" }); // delete _cfv and _cfvisit
    renderPrivacy();
  }

  function evaluate() {
    if (allowed()) {
      if (!on && !asking && cookieless()) {
        toHost({ event: "ids" }); // delete any _cfv and _cfvisit left by cookie mode
        on = true;
        pageview(false);
      } else if (!on && !asking) {
        asking = true;
        toHost({ event: "ids", get: true });
      }
    } else if (on || asking || consent === "denied") {
      stop();
    }
    countAnonymously();
  }

  function tick() {
    if (!on || document.visibilityState !== "visible") return;
    const now = Date.now();
    if (now - V.at > IDLE) return pageview(true); // back after a long pause: a new visit
    checkRules();
    if (now - lastPing >= ping) {
      lastPing = now;
      beacon({ type: "ping", seq: seq(), seconds: seconds() });
    } else {
      armLeave();
    }
  }

  // Automatic invitations: the first rule whose path glob matches once the page has been visible
  // long enough; at most once per visit, only while the team is online (as of this page's
  // load), and not while the visitor is chatting or already invited.
  function checkRules() {
    if (V.inv || S.open || active() || S.invite || !cfg.online || !Array.isArray(cfg.invite_rules)) return;
    const path = (S.page && S.page.path) || "/";
    for (const r of cfg.invite_rules) {
      if (typeof r.path !== "string" || !globMatch(r.path, path) || seconds() < (r.seconds | 0)) continue;
      V.inv = 1;
      keep();
      showInvite(r.text, cfg.name);
      return;
    }
  }

  function onVisibility() {
    const now = Date.now();
    if (document.visibilityState === "visible") {
      since = now;
      if (on && now - V.at > IDLE) pageview(true);
      else armLeave();
    } else {
      if (since) visibleMs += now - since;
      since = 0;
      if (on) {
        V.at = now; // the loader has sent the leave beacon: that was activity
        keep();
      }
    }
  }

  return {
    init(m, search) {
      ping = Math.max(250, Number(m.ping) || 15000);
      consent = m.consent === "granted" || m.consent === "denied" ? m.consent : null;
      const params = new URLSearchParams(search);
      const kept = new URLSearchParams();
      params.forEach((v, k) => CAMPAIGN_KEY.test(k) && kept.append(k, v));
      const q = kept.toString();
      url = ((S.page && S.page.path) || "/").slice(0, 1800) + (q ? "?" + q.slice(0, 200) : "");
      const ref = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+/i.exec(String(m.referrer || ""));
      referrer = ref ? ref[0] : null; // the referring site's origin only
      if (S.signals.gpc) {
        // One opt-out record per browser session, without identifiers and without storing
        // anything: not again on a reload, back/forward, or a page reached from this site.
        const entry = (!m.nav || m.nav === "navigate") && referrer !== S.host;
        if (entry) toHost({ event: "beacon", body: JSON.stringify({ site: SITE, events: [{ type: "optout" }] }) });
      }
      if (S.private) return stop(); // and delete identifiers an earlier visit may have left
      document.addEventListener("visibilitychange", onVisibility);
      $("stats-object").addEventListener("click", object);
      setInterval(tick, Math.min(ping, 1000));
      fetch("/api/widget/config?site=" + encodeURIComponent(SITE), { credentials: "omit" })
        .then((r) => (r.ok ? r.json() : null))
        .then((c) => {
          if (c && c.consent_mode) {
            cfg = c;
            evaluate();
            renderPrivacy(); // what the site does (e.g. anonymous statistics) is known now
          }
        })
        .catch(() => {});
    },
    setConsent(value) {
      if (value !== "granted" && value !== "denied") return;
      consent = value;
      evaluate();
      renderPrivacy();
    },
    onIds(m) {
      asking = false;
      if (on || !allowed()) return;
      if (!m.ok) return renderPrivacy(); // cookies or storage blocked: chat only
      cfv = typeof m.cfv === "string" && /^[\w-]{22}$/.test(m.cfv) ? m.cfv : randomToken(22);
      let v = null;
      try {
        v = JSON.parse(m.visit || "null");
      } catch {
        v = null;
      }
      const fresh = v && v.s === SITE && ID_RE.test(String(v.id)) && Number.isInteger(v.n) && Date.now() - v.at < IDLE;
      V = fresh ? { id: v.id, at: v.at, n: v.n, s: SITE, inv: v.inv ? 1 : 0 } : null;
      on = true;
      pageview(false);
    },
    onReply(r) {
      if (!r || typeof r !== "object") return;
      if (Number.isInteger(r.seq) && V) V.seq = r.seq;
      if (r.honoured === "gpc" || r.honoured === "dnt") {
        // The browser sent the signal as a request header only: honour it all the same.
        S.signals[r.honoured] = true;
        S.private = true;
        stop();
      }
      if (r.invite && typeof r.invite.text === "string") showInvite(r.invite.text, r.invite.from);
    },
    visit: () => (on && V && !cookieless() ? V.id : null), // a cookieless visit is the server's
    state: () => ({ on, cfg, consent, uk: anonymous() && !S.private ? (objected ? "objected" : "counting") : null }),
  };
})();

// A visit id starts with the time in base 36 (8 characters, in the same order as the time), then
// 14 random characters: new visits sort after old ones, so the server's indexes on visit ids
// grow at one end instead of touching a random page per beacon (docs/performance.md).
function visitId() {
  return Date.now().toString(36).padStart(8, "0") + randomToken(14);
}

function randomToken(n) {
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => abc[b & 63]).join("");
}

// "/used-cars/*": `*` matches any run of characters (slashes included), everything else is literal.
function globMatch(glob, path) {
  const re = glob.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*");
  return new RegExp("^" + re + "$").test(path);
}

// ---- invitations ----------------------------------------------------------------------------------
// Shown as a teaser above the launcher (the frame, sized to it by the loader): it never opens the
// panel by itself. Opening the chat takes it up; the dismiss button or Escape drops it.
function showInvite(text, from) {
  text = String(text || "").trim().slice(0, 500);
  if (!text) return;
  const invite = { text, from: String(from || "").trim().slice(0, 100) || (S.site && S.site.name) || "" };
  if (S.open) {
    S.invited = invite;
    persist();
    renderInvite();
    return;
  }
  S.invite = invite;
  renderInvite();
  $("teaser-live").textContent = (invite.from ? invite.from + ": " : "") + text;
  reportState();
}

function dismissInvite() {
  S.invite = null;
  renderInvite();
  reportState(); // the loader hides the frame and gives focus back to the launcher
}

function teaserHeight() {
  if (!S.invite || S.open) return 0;
  return Math.max(56, Math.min(240, Math.ceil($("teaser").getBoundingClientRect().height) || 96));
}

function renderInvite() {
  const teasing = !!S.invite && !S.open;
  document.body.classList.toggle("teasing", teasing);
  $("teaser").hidden = !teasing;
  if (S.invite) {
    $("teaser-from").textContent = S.invite.from;
    $("teaser-from").hidden = !S.invite.from;
    $("teaser-text").textContent = S.invite.text;
  }
  const shown = S.invited;
  $("invite").hidden = !shown;
  if (shown) {
    $("invite-from").textContent = shown.from || "";
    $("invite-text").textContent = shown.text;
  }
  $("intro").hidden = S.msgs.length > 0 || !!shown;
}

// ---- privacy panel --------------------------------------------------------------------------------
function renderPrivacy() {
  const { on, cfg, consent, uk } = stats.state();
  const signal = $("privacy-signal");
  const detail = $("privacy-signal-detail");
  signal.hidden = detail.hidden = !S.private;
  if (S.signals.gpc) {
    signal.textContent = "Opt-out request honoured";
    detail.textContent = "Your browser sent a Global Privacy Control signal, so this visit is not recorded: no cookie is set and no statistics are kept. The chat works as usual.";
    // An earlier "yes" in the site's cookie settings does not outweigh the signal (R15).
    if (consent === "granted") detail.textContent += " You had agreed to statistics in this site's cookie settings; your browser's signal takes precedence while it is on.";
  } else if (S.signals.dnt) {
    signal.textContent = "Do Not Track is on";
    detail.textContent = "Your browser asks not to be tracked, so tracking is off: this visit is not recorded and no cookie is set. The chat works as usual.";
  }
  const optIn = !cfg || cfg.consent_mode !== "notice";
  let state;
  if (S.private) state = "Visit statistics: off.";
  else if (on) state = optIn
    ? "Visit statistics: on, because you agreed in this site's cookie settings, where you can change your mind at any time."
    : "Visit statistics: on. You can object in this site's cookie or privacy settings at any time; your choice is honoured straight away.";
  else if (consent === "denied") state = "Visit statistics: off, as you chose in this site's cookie settings.";
  else if (optIn) state = "Visit statistics: off. They are only recorded if you agree in this site's cookie settings.";
  else state = "Visit statistics: off.";
  if (!on && uk === "counting") state = "Anonymous statistics only: this UK site counts the pages viewed, without cookies and without anything that identifies you or your device, only to see how the site is used. You can object.";
  else if (!on && uk === "objected") state = "Anonymous statistics: off. You objected, so your page views are not counted on this site.";
  $("privacy-state").textContent = state;
  $("stats-object").hidden = on || uk !== "counting";
}

function setPrivacy(show) {
  const panel = $("privacy");
  if (show === !panel.hidden) return;
  if (show) setDetails(false);
  panel.hidden = !show;
  $("app").classList.toggle("privacy-open", show);
  $("privacy-btn").setAttribute("aria-expanded", String(show));
  if (show) {
    renderPrivacy();
    $("privacy-title").focus();
  } else {
    $("privacy-btn").focus();
  }
}

// ---- wiring ------------------------------------------------------------------------------------
function wire() {
  const box = $("text");
  const log = $("log");
  log.addEventListener("scroll", () => {
    // A hidden panel has no layout (every size is 0): that must not unpin the transcript.
    if (log.clientHeight) pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  });
  // The log shrinks or grows when the typing row, a notice, the confirm bar or a longer draft
  // comes and goes, and when the hidden iframe is shown: stay on the latest message throughout.
  // So does its content: a message, or the consent card appearing or changing (Chrome's scroll
  // anchoring is off for the log, app.css: it would move the view and unpin it).
  const follow = new ResizeObserver(pinToBottom);
  for (const el of [log, $("msgs"), $("consent")]) follow.observe(el);
  box.addEventListener("input", () => onDraft(false));
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submitText();
    }
  });
  box.addEventListener("blur", stopTyping);
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    submitText();
    box.focus();
  });
  $("minimise").hidden = !EMBEDDED;
  $("minimise").addEventListener("click", () => setOpen(false));
  $("end").addEventListener("click", () => {
    $("confirm").hidden = false;
    $("confirm-no").focus();
  });
  $("confirm-no").addEventListener("click", () => {
    $("confirm").hidden = true;
    $("end").focus();
  });
  $("confirm-yes").addEventListener("click", () => {
    $("confirm").hidden = true;
    if (active() && !send({ type: "close", conversation: S.conv.id })) notice("You're offline. Please try again in a moment.");
  });
  $("restart").addEventListener("click", () => {
    resetConversation();
    persist();
    render();
    reportState();
    box.focus();
  });
  $("enquiry").addEventListener("submit", submitEnquiry);
  wireLeads();
  $("privacy-btn").addEventListener("click", () => setPrivacy($("privacy").hidden));
  $("privacy-back").addEventListener("click", () => setPrivacy(false));
  $("teaser-open").addEventListener("click", () => setOpen(true));
  $("teaser-close").addEventListener("click", dismissInvite);
  // The teaser's height follows its text (and the width the loader gives the frame).
  new ResizeObserver(() => S.invite && !S.open && reportState()).observe($("teaser"));
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    if (S.invite && !S.open) dismissInvite();
    else if (!$("confirm").hidden) $("confirm-no").click();
    else if (!$("privacy").hidden) setPrivacy(false);
    else if (!$("details").hidden) setDetails(false);
    else if (EMBEDDED && S.open) setOpen(false);
  });
  document.addEventListener("visibilitychange", () => {
    if (visible()) {
      markSeen();
      persist();
      reportState();
    }
  });
}

function start() {
  // Stay open across pages only while there is a conversation to keep going.
  S.open = !EMBEDDED || (S.open && active());
  wire();
  render();
  renderInvite();
  renderPrivacy();
  toHost({ event: "ready" });
  // Resume straight away only when there is something to resume; otherwise wait to be opened.
  if (active() || outbox().length || !EMBEDDED) connect();
  initReceived.then(() => {
    if (S.open) setOpen(true);
  });
}

start();
