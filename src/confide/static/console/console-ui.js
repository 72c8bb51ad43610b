// DOM for the live console: list items, tabs and conversation panes.
// Markup lives in <template>s in app.html; this module only clones them and fills text with
// textContent (see console-util.js). No innerHTML anywhere: every string here may be hostile.

import {
  cloneTemplate, slot, setText, setTime, parseTime, formatClock, formatAgo, paintOrg,
} from "./console-util.js";
import { VisitPanel } from "./console-visit.js";
import { LeadPanel } from "./console-lead.js";

const STATE_LABEL = { waiting: "Waiting", active: "Active", closed: "Closed", unknown: "…" };

function setBadge(node, count, noun = "unread") {
  node.hidden = !count;
  setText(node, count > 99 ? "99+" : count || "");
  node.setAttribute("aria-label", `${count} ${noun}`);
}

// ───────────────────────────── left column ─────────────────────────────

/**
 * Render one queue: reuse existing <li>s by conversation id so focus and screen-reader position
 * survive live updates, and only touch text that changed.
 */
export function renderList(ul, records, { activeId, onOpen, me, now = Date.now() }) {
  const existing = new Map([...ul.children].map((li) => [li.dataset.id, li]));
  let prev = null;
  for (const r of records) {
    let li = existing.get(r.id);
    if (li) {
      existing.delete(r.id);
    } else {
      li = cloneTemplate("tpl-conv-item");
      li.dataset.id = r.id;
      li.querySelector(".conv-item").addEventListener("click", () => onOpen(r.id));
    }
    fillItem(li, r, activeId, now, me);
    const want = prev ? prev.nextSibling : ul.firstChild;
    if (want !== li) ul.insertBefore(li, want);
    prev = li;
  }
  for (const li of existing.values()) li.remove();
}

function fillItem(li, r, activeId, now, me) {
  const btn = li.querySelector(".conv-item");
  paintOrg(li, r.orgKey);
  setText(slot(li, "visitor"), r.visitorName);
  setText(slot(li, "org"), r.orgName);
  setText(slot(li, "site"), r.siteLabel);
  slot(li, "site").title = r.siteName;
  slot(li, "source").hidden = r.data?.source !== "enquiry";
  const last = r.lastMessage;
  // Messages we hold win; before history arrives, the server's own preview of the last message.
  let preview = r.data?.preview || "No messages yet";
  if (last) {
    const name = last.author?.name;
    const who = last.author?.role !== "agent" ? "" : name && name !== me ? `${name}: ` : "You: ";
    preview = who + last.text;
  }
  // Collapse newlines so one line of preview shows; CSS adds the ellipsis.
  setText(slot(li, "preview"), preview.replace(/\s+/g, " ").slice(0, 160));
  slot(li, "typing").hidden = !r.visitorTyping;
  slot(li, "preview").hidden = r.visitorTyping;
  const unread = r.unread;
  setBadge(slot(li, "unread"), unread);
  li.classList.toggle("has-unread", unread > 0);
  const time = slot(li, "time");
  if (r.state === "waiting") {
    const d = parseTime(r.data?.created_at);
    setTime(time, d, d ? `waiting ${formatAgo(d, now)}` : "");
  } else {
    const d = parseTime(last?.at || r.data?.updated_at);
    setTime(time, d, formatClock(d));
  }
  if (r.id === activeId) btn.setAttribute("aria-current", "true");
  else btn.removeAttribute("aria-current");
}

// ───────────────────────────── panes ─────────────────────────────

export class Pane {
  /**
   * @param {object} record ConversationRecord
   * @param {object} cb callbacks: accept, closeConv, send(text), typing(), back, hide,
   *   retry(clientId), discard(clientId), select
   */
  constructor(record, cb) {
    this.id = record.id;
    this.cb = cb;
    this.root = cloneTemplate("tpl-pane");
    this.root.id = `pane-${record.id}`;
    this.root.dataset.id = record.id;
    this.tabWrap = cloneTemplate("tpl-tab");
    this.tab = this.tabWrap.querySelector('[role="tab"]');
    this.tab.id = `tab-${record.id}`;
    this.tab.setAttribute("aria-controls", this.root.id);
    this.root.setAttribute("aria-labelledby", this.tab.id);

    this.log = slot(this.root, "log");
    this.scroller = slot(this.root, "scroller"); // the role="log" live region around the <ol>
    this.input = slot(this.root, "input");
    this.input.id = `composer-${record.id}`;
    const label = slot(this.root, "label");
    label.htmlFor = this.input.id;
    this.notices = slot(this.root, "notices");
    this.closeArmed = null;
    this.visit = new VisitPanel(slot(this.root, "visit"), record.id);
    this.lead = new LeadPanel(slot(this.root, "lead"), record.id);
    this.lead.load();

    this.tab.addEventListener("click", () => cb.select());
    slot(this.tabWrap, "close").addEventListener("click", () => cb.hide());
    slot(this.root, "back").addEventListener("click", () => cb.back());
    slot(this.root, "accept").addEventListener("click", () => cb.accept());
    slot(this.root, "close-conv").addEventListener("click", () => this.onCloseClick());
    slot(this.root, "jump").addEventListener("click", () => this.scrollToEnd(true));
    this.scroller.addEventListener("scroll", () => {
      if (this.nearBottom()) slot(this.root, "jump").hidden = true;
    });

    const form = slot(this.root, "composer");
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (e) => {
      // Enter sends, Shift+Enter is a new line; never interrupt an IME composition.
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey) {
        e.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => {
      this.autosize();
      this.updateCounter();
      if (this.input.value.trim()) cb.typing(true);
      else cb.typing(false);
    });
    this.input.addEventListener("blur", () => cb.typing(false));
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    if ([...text].length > 4000) {
      this.notice("This message is longer than 4,000 characters. Please shorten it.", "error");
      return;
    }
    if (this.cb.send(text)) {
      this.input.value = "";
      this.autosize();
      this.updateCounter();
    }
  }

  autosize() {
    // Grow with the text up to ~8 lines (CSS max-height), via CSSOM so a strict CSP allows it.
    this.input.style.height = "auto";
    this.input.style.height = `${this.input.scrollHeight}px`;
  }

  updateCounter() {
    const left = 4000 - [...this.input.value].length;
    const hint = slot(this.root, "hint");
    if (left < 300) {
      hint.dataset.warn = left < 0 ? "over" : "near";
      setText(hint, left >= 0 ? `${left} characters left` : `${-left} characters over the limit`);
    } else if (hint.dataset.warn) {
      delete hint.dataset.warn;
      hint.replaceChildren(kbd("Enter"), " to send · ", kbd("Shift"), "+", kbd("Enter"), " for a new line");
    }
  }

  /** Two-step close so a stray click does not end a visitor's chat. */
  onCloseClick() {
    const btn = slot(this.root, "close-conv");
    if (this.closeArmed) {
      clearTimeout(this.closeArmed);
      this.closeArmed = null;
      setText(btn, "Close chat");
      btn.classList.remove("armed");
      this.cb.closeConv();
      return;
    }
    setText(btn, "Click again to close");
    btn.classList.add("armed");
    this.closeArmed = setTimeout(() => {
      this.closeArmed = null;
      setText(btn, "Close chat");
      btn.classList.remove("armed");
    }, 4000);
  }

  /** Header, tab and composer from the record and who we are. */
  update(record, { user, canReply, unread, visitId = null, visitLive = false }) {
    const d = record.data;
    this.visit.setVisit(visitId);
    this.visit.setLive(visitLive);
    this.root.classList.toggle("has-visit", !!visitId);
    paintOrg(this.root, record.orgKey);
    paintOrg(this.tabWrap, record.orgKey);
    setText(slot(this.root, "org"), record.orgName || "Unknown organisation");
    setText(slot(this.root, "site"), record.siteLabel || "Unknown site");
    slot(this.root, "site").title = record.siteName;
    setText(slot(this.root, "visitor"), record.visitorName);
    const named = d?.visitor?.name;
    if (named) {
      for (const who of this.root.querySelectorAll(".msg-visitor .msg-author")) setText(who, named);
    }
    const state = record.state;
    const badge = slot(this.root, "state");
    badge.className = `state-badge state-${state}`;
    setText(badge, STATE_LABEL[state] || state);
    const op = d?.operator;
    let opText = "";
    if (state === "active" && op) {
      opText = user && String(op.id) === String(user.id) ? "· You are handling this chat" : `· Handled by ${op.name}`;
    } else if (state === "closed" && op) {
      opText = `· Was handled by ${op.name}`;
    }
    setText(slot(this.root, "operator"), opText);
    slot(this.root, "source").hidden = d?.source !== "enquiry";
    const contact = d?.visitor?.contact;
    slot(this.root, "contact-line").hidden = !contact;
    setText(slot(this.root, "contact"), contact);

    const tabLabel = `${record.visitorName} · ${record.orgName}`;
    this.scroller.setAttribute("aria-label", `Conversation with ${record.visitorName}, ${record.orgName}`);
    setText(slot(this.tabWrap, "label"), tabLabel);
    this.tab.title = `${record.visitorName} · ${record.orgName} – ${record.siteLabel}`;
    setBadge(slot(this.tabWrap, "unread"), unread);
    this.tabWrap.classList.toggle("is-closed", state === "closed");

    const accept = slot(this.root, "accept");
    accept.hidden = state !== "waiting";
    const closeBtn = slot(this.root, "close-conv");
    const mine = !!(op && user && String(op.id) === String(user.id));
    closeBtn.hidden = !(state === "waiting" || (state === "active" && (mine || user?.role === "admin")));

    const locked = slot(this.root, "locked");
    const row = slot(this.root, "row");
    let lockText = "";
    if (state === "unknown") lockText = "Loading…";
    else if (state === "waiting") lockText = "Accept this chat to reply.";
    else if (state === "closed") lockText = "This chat is closed. The visitor can start a new one from the website.";
    else if (d?.source === "enquiry") {
      // Left while nobody was online: the visitor is not in a chat, so a reply here reaches nobody.
      lockText = "The visitor left this enquiry while nobody was online and is not in a chat: answer them by email or phone (Contact, above), then close it.";
    }
    else if (!canReply) lockText = op ? `${op.name} is handling this chat.` : "You cannot reply to this chat.";
    locked.hidden = !lockText;
    setText(locked, lockText);
    row.hidden = !!lockText;
    slot(this.root, "hint").hidden = !!lockText;
    setText(slot(this.root, "label"), `Reply to ${record.visitorName}`);
    if (lockText && this.acceptPending && state !== "waiting") this.acceptPending = false;
    if (!this.acceptPending) {
      accept.disabled = false;
      setText(accept, "Accept chat");
    }
  }

  setAccepting() {
    this.acceptPending = true;
    const accept = slot(this.root, "accept");
    accept.disabled = true;
    setText(accept, "Accepting…");
  }

  clearAccepting() {
    this.acceptPending = false;
    const accept = slot(this.root, "accept");
    accept.disabled = false;
    setText(accept, "Accept chat");
  }

  setActive(active) {
    this.root.hidden = !active;
    this.tab.setAttribute("aria-selected", active ? "true" : "false");
    this.tab.tabIndex = active ? 0 : -1;
    this.tabWrap.classList.toggle("is-active", active);
  }

  setLoading(loading) {
    slot(this.root, "loading").hidden = !loading;
    // aria-busy: a screen reader should not read a whole history out as "new" messages.
    this.scroller.setAttribute("aria-busy", loading ? "true" : "false");
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  scrollToEnd(force) {
    if (force || this.nearBottom()) {
      this.scroller.scrollTop = this.scroller.scrollHeight;
      slot(this.root, "jump").hidden = true;
    }
  }

  /** Insert confirmed messages at their seq position (before later seqs and pending ones). */
  addMessages(added, record) {
    if (!added.length) return;
    const stick = this.nearBottom() || this.root.hidden;
    let ownMessage = false;
    for (const m of added) {
      const existing = this.log.querySelector(`li[data-seq="${m.seq}"]`);
      if (existing) continue;
      const li = messageItem(m, record);
      let before = null;
      for (const child of this.log.children) {
        if (child.dataset.pending || Number(child.dataset.seq) > m.seq) {
          before = child;
          break;
        }
      }
      this.log.insertBefore(li, before);
      regroup(li);
      if (li.nextElementSibling) regroup(li.nextElementSibling);
      if (m.author?.role === "agent") ownMessage = true;
    }
    if (stick || ownMessage) this.scrollToEnd(true);
    else slot(this.root, "jump").hidden = false;
  }

  /** Pending (sending / failed) messages always sit at the end, in the order typed. */
  renderPending(entries) {
    const want = new Set(entries.map((e) => e.client_id));
    for (const li of [...this.log.querySelectorAll("li[data-pending]")]) {
      if (!want.has(li.dataset.clientId)) li.remove();
    }
    for (const e of entries) {
      let li = this.log.querySelector(`li[data-client-id="${CSS.escape(e.client_id)}"]`);
      if (!li) {
        li = pendingItem(e, this.cb);
        this.log.append(li);
        this.scrollToEnd(true);
      }
      const status = li.querySelector(".msg-status-text");
      const actions = li.querySelector(".msg-actions");
      li.classList.toggle("msg-failed", e.state === "failed");
      if (e.state === "failed") {
        setText(status, `Not sent: ${e.error?.message || "the server refused this message"}`);
        actions.hidden = false;
      } else {
        setText(status, this.cb.isOnline() ? "Sending…" : "Waiting for connection…");
        actions.hidden = true;
      }
    }
  }

  /** "Seen" under the agent's last message once the visitor's `seen` covers it. */
  updateSeen(record) {
    for (const old of this.log.querySelectorAll(".msg-seen")) old.remove();
    const last = record.lastAgentMessage;
    if (!last || record.visitorSeenSeq < last.seq) return;
    const li = this.log.querySelector(`li[data-seq="${last.seq}"]`);
    if (!li) return;
    const p = document.createElement("p");
    p.className = "msg-status msg-seen";
    p.textContent = "Seen";
    li.append(p);
  }

  /** A small note under a confirmed message (e.g. why its stored text differs from the typed). */
  noteOn(seq, text) {
    const li = this.log.querySelector(`li[data-seq="${seq}"]`);
    if (!li || li.querySelector(".msg-note")) return;
    const p = document.createElement("p");
    p.className = "msg-status msg-note";
    p.textContent = text;
    li.append(p);
  }

  setTyping(typing) {
    setText(slot(this.root, "typing"), typing ? "Visitor is typing…" : "");
    slot(this.root, "typing").classList.toggle("on", typing);
  }

  /** A polite notice at the top of the pane; errors stay until dismissed or replaced. */
  notice(text, kind = "info", timeoutMs = kind === "error" ? 0 : 6000) {
    const p = document.createElement("div");
    p.className = `notice notice-${kind}`;
    const span = document.createElement("span");
    span.textContent = text;
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "notice-dismiss";
    dismiss.setAttribute("aria-label", "Dismiss");
    dismiss.textContent = "×";
    dismiss.addEventListener("click", () => p.remove());
    p.append(span, dismiss);
    // Same text twice in a row (e.g. repeated rate limits) replaces rather than stacks.
    for (const n of this.notices.children) if (n.firstChild.textContent === text) n.remove();
    while (this.notices.children.length >= 3) this.notices.firstChild.remove();
    this.notices.append(p);
    if (timeoutMs) setTimeout(() => p.remove(), timeoutMs);
  }

  focusComposer() {
    if (!slot(this.root, "row").hidden) this.input.focus();
    else this.root.focus();
  }

  destroy() {
    clearTimeout(this.closeArmed);
    this.visit.destroy();
    this.lead.destroy();
    this.root.remove();
    this.tabWrap.remove();
  }
}

function kbd(text) {
  const k = document.createElement("kbd");
  k.textContent = text;
  return k;
}

function authorLabel(m, record) {
  const role = m.author?.role;
  // The name the operator saved wins over the pseudonym the message was sent under.
  if (role === "visitor") return record.data?.visitor?.name || m.author?.name || record.visitorName;
  if (role === "agent") return m.author?.name || "Agent";
  return "";
}

function messageItem(m, record) {
  const li = document.createElement("li");
  const role = ["visitor", "agent", "system"].includes(m.author?.role) ? m.author.role : "system";
  li.className = `msg msg-${role}`;
  li.dataset.seq = String(m.seq);
  li.dataset.author = `${role}:${m.author?.name ?? ""}`;
  const at = parseTime(m.at);
  if (at) li.dataset.at = String(at.getTime());
  if (role === "system") {
    const p = document.createElement("p");
    p.className = "msg-system";
    p.textContent = m.text;
    li.append(p);
    return li;
  }
  const meta = document.createElement("p");
  meta.className = "msg-meta";
  const who = document.createElement("span");
  who.className = "msg-author";
  who.textContent = authorLabel(m, record);
  const time = document.createElement("time");
  setTime(time, at, formatClock(at));
  meta.append(who, " ", time);
  const bubble = document.createElement("p");
  bubble.className = "msg-bubble";
  bubble.textContent = m.text;
  li.append(meta, bubble);
  return li;
}

function pendingItem(e, cb) {
  const li = document.createElement("li");
  li.className = "msg msg-agent msg-pending";
  li.dataset.pending = "1";
  li.dataset.clientId = e.client_id;
  const bubble = document.createElement("p");
  bubble.className = "msg-bubble";
  bubble.textContent = e.text;
  const status = document.createElement("p");
  status.className = "msg-status";
  const text = document.createElement("span");
  text.className = "msg-status-text";
  const actions = document.createElement("span");
  actions.className = "msg-actions";
  const retry = document.createElement("button");
  retry.type = "button";
  retry.className = "link-button";
  retry.textContent = "Retry";
  retry.addEventListener("click", () => cb.retry(e.client_id));
  const discard = document.createElement("button");
  discard.type = "button";
  discard.className = "link-button";
  discard.textContent = "Remove";
  discard.addEventListener("click", () => cb.discard(e.client_id));
  actions.append(" ", retry, " · ", discard);
  status.append(text, actions);
  li.append(bubble, status);
  return li;
}

/** Consecutive messages by the same author within 5 minutes share one name/time line. */
function regroup(li) {
  const prev = li.previousElementSibling;
  const same =
    prev &&
    !prev.dataset.pending &&
    !li.dataset.pending &&
    prev.dataset.author === li.dataset.author &&
    !li.classList.contains("msg-system") &&
    Math.abs(Number(li.dataset.at || 0) - Number(prev.dataset.at || 0)) < 5 * 60 * 1000;
  li.classList.toggle("msg-cont", !!same);
}
