// The "Lead" panel beside a chat: the visitor's captured details (with what was detected in the
// chat), consent to share them, the leads made from this chat and the visitor's earlier chats.
// Reads GET /api/conversations/{id}/lead-panel; every change goes through the JSON API with the
// CSRF header (console-util.js api) and is followed by a fresh read, so the panel always shows
// what the server holds. console.js re-reads it on `consent` and `lead_changed` frames.
// Text only (textContent): every value here was typed by a visitor or an operator.

import { api, cloneTemplate, el, setText, parseUtc as utc, formatClock, setTime } from "./console-util.js";

const lslot = (root, name) => root.querySelector(`[data-lslot="${name}"]`);
const wide = window.matchMedia("(min-width: 1160px)"); // where the panels sit beside the chat
const REFRESH_DEBOUNCE_MS = 700; // a burst of visitor messages costs one read
const SUCCESS_FADE_MS = 6000; // "Details saved." goes away; errors stay until the next attempt

const DETAIL_FIELDS = ["name", "email", "phone", "postcode", "address", "city"];
const FIELD_LABEL = {
  name: "Name", email: "Email", phone: "Phone", address: "Address", city: "Town or city",
  postcode: "Postcode", country: "Country", minor: "Under-age flag",
};
const DELIVERY_TEXT = {
  awaiting_consent: "Waiting for the visitor's consent",
  queued: "Sending…",
  delivered: "Delivered",
  failed: "Delivery failed",
  withdrawn: "Consent withdrawn — not sent",
};
const STATUS_TEXT = { new: "New", contacted: "Contacted", closed: "Closed" };
const ROLE_TEXT = { visitor: "Visitor", agent: "Operator", system: "Confide" };

/** A button back from "busy": where a click on it left focus on the page, focus it again. */
function ready(button) {
  button.disabled = false;
  if (!document.activeElement || document.activeElement === document.body) button.focus();
}

function timeEl(value) {
  const date = utc(value);
  const t = document.createElement("time");
  setTime(t, date, formatClock(date));
  return t;
}

/** "2021 Skoda Octavia · Used · stock UK123" from a lead's vehicle object. */
function vehicleText(v, withStatus = true) {
  if (!v || typeof v !== "object") return "";
  const name = [v.year, v.make, v.model].filter(Boolean).join(" ");
  const status = !withStatus ? "" : v.status === "new" ? "New" : v.status === "used" ? "Used" : "";
  return [name, status, v.stock ? `stock ${v.stock}` : ""].filter(Boolean).join(" · ");
}

export class LeadPanel {
  /** @param {HTMLElement} root the pane's <section data-slot="lead"> */
  constructor(root, conversationId) {
    this.root = root;
    this.id = conversationId;
    this.data = null;
    this.known = {}; // the details as the server last had them: unedited inputs follow them
    this.loading = null;
    this.again = false;
    this.timer = null;
    this.controller = null;
    this.leadMsgs = new Map(); // lead id -> [text, kind]: survives re-renders of the list
    this.createTouched = false;
    this.focusSuggestion = null; // after "Use": where focus goes once the list is re-drawn

    root.append(cloneTemplate("tpl-lead"));
    const heading = root.querySelector(".lead-heading");
    heading.id = `lead-heading-${conversationId}`;
    root.setAttribute("aria-labelledby", heading.id);
    this.toggle = lslot(root, "toggle");
    this.body = lslot(root, "body");
    this.body.id = `lead-body-${conversationId}`;
    this.toggle.setAttribute("aria-controls", this.body.id);
    this.toggle.addEventListener("click", () => this.setExpanded(!this.expanded));
    lslot(root, "retry").addEventListener("click", () => this.load());
    this.setExpanded(wide.matches);
    // Name each control by its label's text only (a wrapping label would add a select's value).
    for (const control of root.querySelectorAll(".lp-field input, .lp-field select, .lp-field textarea")) {
      const span = control.closest(".lp-field").querySelector(".lp-label");
      span.id = `lp-${conversationId}-${control.closest("form").dataset.lslot}-${control.name}`;
      control.setAttribute("aria-labelledby", span.id);
    }

    this.details = lslot(root, "details");
    this.details.addEventListener("submit", (e) => {
      e.preventDefault();
      this.saveDetails();
    });
    this.details.addEventListener("input", (e) => e.target.removeAttribute?.("aria-invalid"));
    lslot(root, "age").addEventListener("submit", (e) => {
      e.preventDefault();
      this.recordAge();
    });
    lslot(root, "ask").addEventListener("click", () => this.askConsent());
    this.create = lslot(root, "create");
    this.create.addEventListener("submit", (e) => {
      e.preventDefault();
      this.createLead();
    });
    lslot(root, "create-wrap").addEventListener("toggle", () => (this.createTouched = true));
  }

  get expanded() {
    return this.toggle.getAttribute("aria-expanded") === "true";
  }

  setExpanded(on) {
    this.toggle.setAttribute("aria-expanded", on ? "true" : "false");
    this.body.hidden = !on;
    this.root.classList.toggle("is-collapsed", !on);
  }

  /** Re-read soon (after visitor messages: new details may have been typed). */
  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), REFRESH_DEBOUNCE_MS);
  }

  /** Read the panel; a read asked for while one runs happens once it is done. */
  async load() {
    clearTimeout(this.timer);
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = this.fetchPanel();
    try {
      await this.loading;
    } finally {
      this.loading = null;
    }
    if (this.again) {
      this.again = false;
      await this.load();
    }
    return undefined;
  }

  async fetchPanel() {
    this.controller = new AbortController();
    if (!this.data) this.status("Loading details…");
    const url = `/api/conversations/${encodeURIComponent(this.id)}/lead-panel`;
    const res = await api("GET", url, undefined, { signal: this.controller.signal });
    this.controller = null;
    if (res.aborted) return;
    if (!res.ok || !res.data || typeof res.data !== "object") {
      if (res.status === 404 || res.status === 403) {
        this.status("Details are not available for this chat.");
      } else if (!this.data) {
        this.status(res.message || "Couldn't load the details.", true);
      }
      return;
    }
    this.data = res.data;
    this.render(res.data);
  }

  status(text, retry = false) {
    const p = lslot(this.root, "status");
    p.hidden = !text;
    setText(p, text);
    lslot(this.root, "retry").hidden = !retry;
    lslot(this.root, "content").hidden = !!text;
  }

  say(name, text, kind = "info") {
    const p = lslot(this.root, name);
    clearTimeout(p.fade);
    p.className = `lp-msg lp-msg-${kind}`;
    // Cleared first, so the same words said twice are announced twice.
    p.textContent = "";
    if (!text) return;
    requestAnimationFrame(() => (p.textContent = text));
    if (kind === "success") p.fade = setTimeout(() => (p.textContent = ""), SUCCESS_FADE_MS);
  }

  // ───────────────────────────── rendering ─────────────────────────────

  render(d) {
    this.status("");
    const person = d.person && typeof d.person === "object" ? d.person : null;
    const minor = !!person?.minor;
    const consent = d.consent || {};
    const leads = Array.isArray(d.leads) ? d.leads : [];

    lslot(this.root, "gpc").hidden = !person?.sale_share_opt_out;
    lslot(this.root, "badges").hidden = !person?.sale_share_opt_out;
    lslot(this.root, "minor").hidden = !minor;

    this.renderDetails(person, minor);
    this.renderSuggestions(minor ? [] : d.suggestions);
    this.renderHistory(d.history);
    this.renderConsent(consent, minor);
    this.renderLeads(leads, minor);
    this.renderEarlier(d.earlier);

    const who = person?.name || (person?.email || person?.phone ? "Details saved" : "No details yet");
    setText(lslot(this.root, "summary"), `${minor ? "Under age" : who} · ${this.consentShort(consent)}`);
  }

  renderDetails(person, minor) {
    for (const name of DETAIL_FIELDS) {
      const input = this.details.elements.namedItem(name);
      const server = person?.[name] ?? "";
      // An input the operator has not edited follows the server; an edit in progress stays.
      if (input.value === (this.known[name] ?? "")) input.value = server;
      this.known[name] = server;
      input.disabled = minor;
    }
    lslot(this.root, "save").disabled = minor;
  }

  renderSuggestions(list) {
    const items = Array.isArray(list) ? list.filter((s) => s && FIELD_LABEL[s.field]) : [];
    lslot(this.root, "suggest-wrap").hidden = !items.length;
    const ul = lslot(this.root, "suggestions");
    const frag = document.createDocumentFragment();
    for (const s of items) {
      const li = el("li", "lp-suggestion");
      const label = FIELD_LABEL[s.field];
      const text = el("span", "lp-suggest-text");
      text.append(el("span", "lp-suggest-field", label), el("span", "lp-suggest-value", s.value));
      if (s.typed && s.typed !== s.value) text.title = `Typed as “${s.typed}”`;
      const use = el("button", "btn btn-quiet btn-small", "Use");
      use.type = "button";
      use.dataset.key = `${s.field}:${s.value}`;
      use.setAttribute("aria-label", `Use ${label.toLowerCase()} ${s.value}`);
      use.addEventListener("click", () => this.useSuggestion(s.field, s.value, use, items.indexOf(s)));
      li.append(text, use);
      frag.append(li);
    }
    ul.replaceChildren(frag);
    // The used suggestion is gone: the next one (or the form) takes focus, not the page.
    if (this.focusSuggestion != null) {
      const buttons = ul.querySelectorAll("button");
      const next = buttons[Math.min(this.focusSuggestion, buttons.length - 1)];
      (next || this.details.elements.namedItem("name")).focus();
      this.focusSuggestion = null;
    }
  }

  renderHistory(history) {
    const rows = Array.isArray(history) ? history : [];
    lslot(this.root, "history-wrap").hidden = !rows.length;
    setText(lslot(this.root, "history-count"), rows.length ? `(${rows.length})` : "");
    const frag = document.createDocumentFragment();
    for (const h of [...rows].reverse()) {
      const li = el("li", "lp-change");
      const what = el("p", "lp-change-what");
      const label = FIELD_LABEL[h.field] || h.field;
      if (h.source === "redaction") what.append(el("strong", null, "Details removed"), " (under-age visitor)");
      else if (h.value == null) what.append(el("strong", null, label), " cleared");
      else what.append(el("strong", null, label), " ", el("span", "lp-change-value", h.value));
      const meta = el("p", "lp-change-meta");
      const by = h.source === "widget" || h.source === "visitor" ? "by the visitor" : h.by ? `by ${h.by}` : "";
      meta.append(timeEl(h.at), by ? ` · ${by}` : "");
      li.append(what, meta);
      frag.append(li);
    }
    lslot(this.root, "history").replaceChildren(frag);
  }

  consentShort(c) {
    if (c.answer === "granted") return "Agreed";
    if (c.answer === "denied") return "Declined";
    if (c.answer === "withdrawn") return "Withdrawn";
    return c.request ? "Consent asked" : "Consent not asked";
  }

  renderConsent(c, minor) {
    let text = "Not asked";
    let state = "none";
    if (c.answer === "granted") {
      const at = utc(c.answered_at);
      text = at ? `Agreed at ${formatClock(at)}` : "Agreed";
      state = "granted";
    } else if (c.answer === "denied") {
      text = "Declined";
      state = "denied";
    } else if (c.answer === "withdrawn") {
      text = "Withdrawn";
      state = "withdrawn";
    } else if (c.request) {
      text = "Asked — waiting for the visitor";
      state = "waiting";
    }
    const line = lslot(this.root, "consent-line");
    line.className = `lp-consent lp-consent-${state}`;
    setText(lslot(this.root, "consent-text"), text);
    lslot(this.root, "consent-hint").hidden = state === "granted";
    const asked = lslot(this.root, "consent-msg");
    if (c.answer && asked.classList.contains("lp-msg-success")) this.say("consent-msg", ""); // answered now

    const req = c.request && typeof c.request === "object" ? c.request : null;
    lslot(this.root, "question-wrap").hidden = !req?.text;
    setText(lslot(this.root, "question"), req?.text || "");
    const link = lslot(this.root, "policy");
    const url = typeof req?.policy_url === "string" && /^https?:\/\//i.test(req.policy_url) ? req.policy_url : "";
    lslot(this.root, "policy-line").hidden = !url;
    if (url) link.href = url;
    else link.removeAttribute("href");
    setText(lslot(this.root, "policy-version"), req?.policy_version ? `version ${req.policy_version}` : "");

    // Asking again after an agreement would replace the question that agreement answered.
    const ask = lslot(this.root, "ask");
    ask.hidden = state === "granted" || minor;
    setText(ask, state === "waiting" ? "Ask again" : "Ask for consent");
  }

  renderLeads(leads, minor) {
    const ul = lslot(this.root, "leads");
    const existing = new Map([...ul.children].map((li) => [li.dataset.id, li]));
    let prev = null;
    for (const lead of leads) {
      if (!lead || typeof lead.id !== "string") continue;
      let li = existing.get(lead.id);
      if (li) existing.delete(lead.id);
      else li = this.leadItem(lead.id);
      fillLead(li, lead);
      const msg = this.leadMsgs.get(lead.id);
      const p = li.querySelector(".lp-msg");
      if (msg) {
        p.className = `lp-msg lp-msg-${msg[1]}`;
        setText(p, msg[0]);
      }
      const want = prev ? prev.nextSibling : ul.firstChild;
      if (want !== li) ul.insertBefore(li, want);
      prev = li;
    }
    for (const li of existing.values()) li.remove();
    lslot(this.root, "leads-empty").hidden = leads.length > 0;
    const wrap = lslot(this.root, "create-wrap");
    wrap.hidden = minor;
    // Open while there is no lead yet, unless the operator folded it themselves.
    if (!this.createTouched) wrap.open = leads.length === 0;
  }

  leadItem(id) {
    const li = el("li", "lp-lead");
    li.dataset.id = id;
    const top = el("p", "lp-lead-top");
    top.append(el("strong", "lp-lead-purpose"), el("span", "lp-chip lp-lead-status"));
    const delivery = el("p", "lp-delivery");
    const vehicle = el("p", "lp-lead-line lp-lead-vehicle");
    const px = el("p", "lp-lead-line lp-lead-px");
    const comments = el("p", "lp-lead-line lp-lead-comments");
    const meta = el("p", "lp-lead-line lp-lead-meta");
    const send = el("button", "btn btn-primary btn-small lp-send", "Send now");
    send.type = "button";
    send.addEventListener("click", () => this.sendNow(id, send));
    const msg = el("p", "lp-msg");
    msg.setAttribute("role", "status");
    msg.setAttribute("aria-live", "polite");
    li.append(top, delivery, vehicle, px, comments, meta, send, msg);
    return li;
  }

  renderEarlier(earlier) {
    const list = Array.isArray(earlier) ? earlier : [];
    lslot(this.root, "earlier-wrap").hidden = !list.length;
    setText(lslot(this.root, "earlier-count"), list.length ? `(${list.length})` : "");
    const ul = lslot(this.root, "earlier");
    const open = new Set([...ul.querySelectorAll("details[open]")].map((x) => x.dataset.id));
    const frag = document.createDocumentFragment();
    for (const c of list) {
      const li = el("li", "lp-earlier-item");
      const det = el("details", "lp-disclosure");
      det.dataset.id = c.id;
      det.open = open.has(c.id);
      const summary = el("summary");
      const n = Number.isInteger(c.message_count) ? c.message_count : 0;
      summary.append(timeEl(c.created_at), ` · ${n} message${n === 1 ? "" : "s"}`);
      const ol = el("ol", "lp-lines");
      for (const m of Array.isArray(c.messages) ? c.messages : []) {
        const role = ROLE_TEXT[m.role] ? m.role : "system";
        const line = el("li", `lp-line lp-line-${role}`);
        const head = el("p", "lp-line-head");
        head.append(el("span", "lp-line-who", ROLE_TEXT[role]), " ", timeEl(m.at));
        line.append(head, el("p", "lp-line-text", m.text));
        ol.append(line);
      }
      if (!ol.children.length) ol.append(el("li", "lp-line lp-empty", "No messages."));
      det.append(summary, ol);
      li.append(det);
      frag.append(li);
    }
    ul.replaceChildren(frag);
  }

  // ───────────────────────────── actions ─────────────────────────────

  async saveDetails() {
    const body = {};
    const changed = [];
    for (const name of DETAIL_FIELDS) {
      const input = this.details.elements.namedItem(name);
      const value = input.value.trim();
      if (value !== (this.known[name] ?? "")) {
        body[name] = value || null;
        changed.push(input);
      }
    }
    if (!changed.length) {
      this.say("details-msg", "No changes to save.");
      return;
    }
    const button = lslot(this.root, "save");
    button.disabled = true;
    const res = await api("PUT", `/api/conversations/${encodeURIComponent(this.id)}/person`, body);
    ready(button);
    if (!res.ok) {
      // Mark the refused field: the only one changed, or the one the server's message names.
      const said = res.message.toLowerCase();
      const named = ["email", "phone", "postcode", "city", "address", "name"]
        .map((n) => changed.find((input) => input.name === n && said.includes(n)))
        .find(Boolean);
      const refused = changed.length === 1 ? changed[0] : named;
      if (refused) refused.setAttribute("aria-invalid", "true");
      this.say("details-msg", res.message, "error");
      return;
    }
    this.adopt(res.data);
    this.say("details-msg", "Details saved.", "success");
    this.load();
  }

  /** The server's normalised details (e.g. a phone in +44 form) replace what was typed. */
  adopt(person) {
    if (!person || typeof person !== "object") return;
    for (const name of DETAIL_FIELDS) {
      const input = this.details.elements.namedItem(name);
      input.value = person[name] ?? "";
      input.removeAttribute("aria-invalid");
      this.known[name] = person[name] ?? "";
    }
  }

  async useSuggestion(field, value, button, index) {
    button.disabled = true;
    const input = this.details.elements.namedItem(field);
    const res = await api("PUT", `/api/conversations/${encodeURIComponent(this.id)}/person`, { [field]: value });
    if (!button.isConnected) return;
    ready(button);
    if (!res.ok) {
      this.say("details-msg", res.message, "error");
      return;
    }
    // Keep other fields' edits in progress: only this field takes the saved value.
    if (input) {
      input.value = res.data?.[field] ?? value;
      this.known[field] = input.value;
    }
    this.say("details-msg", `${FIELD_LABEL[field]} saved from the chat.`, "success");
    if (button === document.activeElement) this.focusSuggestion = index;
    this.load();
  }

  async recordAge() {
    const form = lslot(this.root, "age");
    const input = form.elements.namedItem("age");
    const age = Number(input.value);
    if (!Number.isInteger(age) || age < 1 || age > 129) {
      input.setAttribute("aria-invalid", "true");
      this.say("age-msg", "Enter the age the visitor gave, in whole years.", "error");
      return;
    }
    input.removeAttribute("aria-invalid");
    const res = await api("POST", `/api/conversations/${encodeURIComponent(this.id)}/age`, { age });
    if (!res.ok) {
      this.say("age-msg", res.message, "error");
      return;
    }
    if (res.data?.minor) {
      this.say("age-msg", "Under age: the visitor's details were redacted and no lead can be made.", "warn");
    } else {
      this.say("age-msg", `${age} is old enough for a lead. Nothing was changed.`, "success");
    }
    input.value = "";
    this.load();
  }

  async askConsent() {
    const ask = lslot(this.root, "ask");
    ask.disabled = true;
    const res = await api("POST", `/api/conversations/${encodeURIComponent(this.id)}/consent-request`);
    ready(ask);
    if (!res.ok) {
      this.say("consent-msg", res.message, "error");
      return;
    }
    if (res.data) this.renderConsent(res.data, false);
    this.say("consent-msg", "Asked in the chat. The answer shows here as soon as the visitor gives it.", "success");
    this.load();
  }

  async createLead() {
    const f = this.create.elements;
    const value = (name) => f.namedItem(name).value.trim();
    const car = (prefix, keys) => {
      const out = {};
      for (const k of keys) if (value(`${prefix}_${k}`)) out[k] = value(`${prefix}_${k}`);
      return Object.keys(out).length ? out : undefined;
    };
    const body = { purpose: value("purpose") };
    const vehicle = car("v", ["make", "model", "year", "stock", "status"]);
    const tradeIn = car("p", ["make", "model", "year"]);
    if (vehicle) body.vehicle = vehicle;
    if (tradeIn) body.trade_in = tradeIn;
    if (value("comments")) body.comments = value("comments");
    const button = this.create.querySelector('button[type="submit"]');
    button.disabled = true;
    const res = await api("POST", `/api/conversations/${encodeURIComponent(this.id)}/leads`, body);
    ready(button);
    if (!res.ok) {
      this.say("create-msg", res.message, "error");
      return;
    }
    this.create.reset();
    const wrap = lslot(this.root, "create-wrap");
    wrap.open = false;
    this.createTouched = true;
    wrap.querySelector("summary").focus();
    const state = res.data?.delivery_state;
    const label = res.data?.purpose_label || "Lead";
    let text = `${label} lead created.`;
    // "delivered" without a send: the client has no destinations, only the portal.
    if (state === "delivered") text = `${label} lead created: the client sees it in their portal.`;
    else if (state === "queued") text = `${label} lead created and is being sent.`;
    else if (state === "awaiting_consent") text = `${label} lead created. It is sent once the visitor agrees to share their details.`;
    this.say("create-msg", text, "success");
    this.load();
  }

  async sendNow(leadId, button) {
    button.disabled = true;
    const res = await api("POST", `/api/leads/${encodeURIComponent(leadId)}/deliver`);
    ready(button);
    const msg = res.ok
      ? [res.data?.delivery_state === "delivered" ? "Delivered." : "Sending…", "success"]
      : [res.message, "error"];
    this.leadMsgs.set(leadId, msg);
    const p = button.parentElement.querySelector(".lp-msg");
    p.className = `lp-msg lp-msg-${msg[1]}`;
    p.textContent = "";
    requestAnimationFrame(() => (p.textContent = msg[0]));
    if (res.ok) this.load();
  }

  destroy() {
    clearTimeout(this.timer);
    if (this.controller) this.controller.abort();
  }
}

function fillLead(li, lead) {
  setText(li.querySelector(".lp-lead-purpose"), lead.purpose_label || lead.purpose);
  const status = li.querySelector(".lp-lead-status");
  setText(status, STATUS_TEXT[lead.status] || lead.status);
  const state = DELIVERY_TEXT[lead.delivery_state] ? lead.delivery_state : "unknown";
  const delivery = li.querySelector(".lp-delivery");
  delivery.className = `lp-delivery lp-delivery-${state}`;
  setText(delivery, DELIVERY_TEXT[state] || lead.delivery_state || "");
  const car = vehicleText(lead.vehicle);
  const px = vehicleText(lead.trade_in, false); // a part-exchange is always used
  const vehicle = li.querySelector(".lp-lead-vehicle");
  vehicle.hidden = !car;
  setText(vehicle, car ? `Vehicle: ${car}` : "");
  const trade = li.querySelector(".lp-lead-px");
  trade.hidden = !px;
  setText(trade, px ? `Part-exchange: ${px}` : "");
  const comments = li.querySelector(".lp-lead-comments");
  comments.hidden = !lead.comments;
  setText(comments, lead.comments ? `“${lead.comments}”` : "");
  const created = utc(lead.created_at);
  setText(li.querySelector(".lp-lead-meta"), created ? `Created ${formatClock(created)}` : "");
  li.querySelector(".lp-send").hidden = lead.delivery_state !== "awaiting_consent";
}
