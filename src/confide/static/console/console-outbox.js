// Messages the operator typed that the server has not acknowledged yet.
// Kept in sessionStorage so a reload or a dropped connection loses nothing: each entry is resent
// with the SAME client_id, and the server de-duplicates on (conversation, client_id), so a resend
// of something that did get through just returns the original ack (protocol.md "Common fields").

import { randomId, session } from "./console-util.js";

// Errors after which resending the same text cannot succeed: show "Not sent" and let the
// operator decide. Anything else (rate_limited, internal, a lost connection) is retried.
const FINAL_ERRORS = new Set([
  "text_too_long", "empty_text", "invalid_state", "forbidden", "not_found", "bad_frame",
  "frame_too_large",
]);

export class Outbox {
  constructor(storageKey) {
    this.key = storageKey;
    /** @type {Map<string, {client_id, conversation, text, at, state, error?, sentAt?}>} */
    this.entries = new Map();
    for (const e of session.get(storageKey, [])) {
      if (e && e.client_id && e.conversation && typeof e.text === "string") {
        this.entries.set(e.client_id, { ...e, sentAt: 0 });
      }
    }
  }

  save() {
    session.set(this.key, [...this.entries.values()].map(({ sentAt, ...rest }) => rest));
  }

  add(conversation, text) {
    const entry = {
      client_id: randomId(),
      conversation,
      text,
      at: new Date().toISOString(),
      state: "sending",
      sentAt: 0,
    };
    this.entries.set(entry.client_id, entry);
    this.save();
    return entry;
  }

  get(clientId) {
    return this.entries.get(clientId);
  }

  /** The server committed it (ack, or our own message echoed back): forget it. */
  settle(clientId) {
    const entry = this.entries.get(clientId);
    if (!entry) return null;
    this.entries.delete(clientId);
    this.save();
    return entry;
  }

  /** Returns true when the error is final (the entry is marked failed), false when we retry. */
  fail(clientId, code, message) {
    const entry = this.entries.get(clientId);
    if (!entry) return false;
    if (FINAL_ERRORS.has(code)) {
      entry.state = "failed";
      entry.error = { code, message };
      this.save();
      return true;
    }
    entry.sentAt = 0; // resend at the next opportunity
    return false;
  }

  retry(clientId) {
    const entry = this.entries.get(clientId);
    if (!entry) return null;
    entry.state = "sending";
    entry.error = undefined;
    entry.sentAt = 0;
    this.save();
    return entry;
  }

  forConversation(conversation) {
    return [...this.entries.values()].filter((e) => e.conversation === conversation);
  }

  /** Entries to (re)send now: never sent on this connection, or unanswered for `staleMs`. */
  due(now, staleMs) {
    return [...this.entries.values()].filter(
      (e) => e.state === "sending" && (!e.sentAt || now - e.sentAt > staleMs),
    );
  }

  /** A new connection: everything still sending must go out again. */
  resetSent() {
    for (const e of this.entries.values()) e.sentAt = 0;
  }
}
