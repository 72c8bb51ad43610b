// What the console knows about each conversation: the server's conversation object, the
// messages held (by seq), and the per-conversation bits the UI needs (unread, seen, typing).
// Pure bookkeeping, no DOM, so the merge rules stay easy to reason about.

import { siteLabel } from "./console-util.js";

export class ConversationRecord {
  constructor(id) {
    this.id = id;
    this.data = null; // last `conversation` object from the server (may be a stored snapshot)
    /** @type {Map<number, object>} message frames by seq */
    this.messages = new Map();
    this.contiguous = 0; // highest seq such that 1..seq are all held: what `sync.after` uses
    this.historyLoaded = false;
    this.mySeenSeq = null; // highest visitor seq this console has marked seen (null: unknown yet)
    this.visitorSeenSeq = 0; // highest seq the visitor has seen (from their `seen` frames)
    this.visitorTyping = false;
    this.syncing = false; // a `sync` is in flight: do not send another for the same gap
  }

  get state() {
    return this.data?.state ?? "unknown";
  }

  get orgName() {
    return this.data?.organisation?.name ?? "";
  }

  get orgKey() {
    return this.data?.organisation?.id ?? this.orgName;
  }

  get siteName() {
    return this.data?.site?.name ?? "";
  }

  /** The site's name for display beside the organisation (see siteLabel). */
  get siteLabel() {
    return siteLabel(this.orgName, this.siteName);
  }

  get siteId() {
    return this.data?.site?.id != null ? String(this.data.site.id) : "";
  }

  get visitorName() {
    const v = this.data?.visitor;
    return (v && (v.name || v.label)) || "Visitor";
  }

  get lastSeq() {
    let max = this.contiguous;
    for (const seq of this.messages.keys()) if (seq > max) max = seq;
    return Math.max(max, this.data?.last_seq ?? 0);
  }

  /** The newest message held, for the list preview. */
  get lastMessage() {
    let best = null;
    for (const m of this.messages.values()) if (!best || m.seq > best.seq) best = m;
    return best;
  }

  /** The newest agent message: "Seen" goes under it once the visitor's seen covers it. */
  get lastAgentMessage() {
    let best = null;
    for (const m of this.messages.values()) {
      if (m.author?.role === "agent" && (!best || m.seq > best.seq)) best = m;
    }
    return best;
  }

  get lastVisitorSeq() {
    let max = 0;
    for (const m of this.messages.values()) {
      if (m.author?.role === "visitor" && m.seq > max) max = m.seq;
    }
    return max;
  }

  /** Visitor messages not yet seen in a focused pane. Before history arrives, trust the server. */
  get unread() {
    if (!this.historyLoaded || this.mySeenSeq == null) return Math.max(0, this.data?.unread ?? 0);
    let n = 0;
    for (const m of this.messages.values()) {
      if (m.author?.role === "visitor" && m.seq > this.mySeenSeq) n += 1;
    }
    return n;
  }

  /**
   * Merge message frames by seq. Returns the messages that were new to us (sorted), so the UI
   * can insert just those. Re-delivered seqs (history after reconnect, echo after ack) replace
   * the stored copy and are not reported as new: no duplicates.
   */
  merge(messages) {
    const added = [];
    for (const m of messages) {
      if (!m || !Number.isInteger(m.seq) || m.seq < 1) continue;
      if (!this.messages.has(m.seq)) added.push(m);
      this.messages.set(m.seq, m);
    }
    while (this.messages.has(this.contiguous + 1)) this.contiguous += 1;
    added.sort((a, b) => a.seq - b.seq);
    return added;
  }

  /** A message past contiguous + 1 means frames were missed (protocol.md, guarantee 3). */
  hasGap() {
    for (const seq of this.messages.keys()) if (seq > this.contiguous + 1) return true;
    return (this.data?.last_seq ?? 0) > this.contiguous && this.historyLoaded;
  }

  /**
   * After the first history: take the seen mark the server read with those messages, so chats
   * that were unread before a reload still count as unread. (The `unread` of an earlier
   * `conversation` frame would miss a message committed between the two reads.) Servers that
   * do not send the mark: derive it from that count.
   */
  initSeenFromServer(agentSeenSeq = null) {
    if (this.mySeenSeq != null) return;
    if (Number.isInteger(agentSeenSeq) && agentSeenSeq >= 0) {
      this.mySeenSeq = agentSeenSeq;
      return;
    }
    const visitorSeqs = [...this.messages.values()]
      .filter((m) => m.author?.role === "visitor")
      .map((m) => m.seq)
      .sort((a, b) => a - b);
    const unread = Math.min(Math.max(0, this.data?.unread ?? 0), visitorSeqs.length);
    this.mySeenSeq = unread === 0 ? this.lastSeq : visitorSeqs[visitorSeqs.length - unread] - 1;
  }
}

export class Store {
  constructor() {
    /** @type {Map<string, ConversationRecord>} */
    this.records = new Map();
    this.user = null; // {id, name, role} from welcome
    this.sites = [];
  }

  get(id) {
    return this.records.get(id);
  }

  ensure(id) {
    let r = this.records.get(id);
    if (!r) {
      r = new ConversationRecord(id);
      this.records.set(id, r);
    }
    return r;
  }

  delete(id) {
    this.records.delete(id);
  }

  isMine(record) {
    const op = record.data?.operator;
    return !!(op && this.user && String(op.id) === String(this.user.id));
  }

  /** Which left-column list a conversation belongs in, or null for none. */
  listOf(record) {
    if (record.state === "waiting") return "waiting";
    if (record.state === "active" && this.isMine(record)) return "mine";
    return null;
  }

  /** Upsert a conversation object; returns the record and the list it was in before. */
  upsert(conv) {
    const r = this.ensure(conv.id);
    const before = r.data ? this.listOf(r) : null;
    const beforeState = r.data?.state ?? null;
    r.data = conv;
    // The server remembers how far the visitor has read, so "Seen" survives reloads.
    if (Number.isInteger(conv.visitor_seen_seq)) {
      r.visitorSeenSeq = Math.max(r.visitorSeenSeq, conv.visitor_seen_seq);
    }
    return { record: r, before, beforeState };
  }

  inList(name) {
    return [...this.records.values()].filter((r) => r.data && this.listOf(r) === name);
  }

  totalUnread() {
    let n = 0;
    for (const r of this.records.values()) if (this.listOf(r)) n += r.unread;
    return n;
  }
}
