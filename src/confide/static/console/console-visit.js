// The "Visit" panel beside a chat: the visit the conversation started in (conversation.visit_id),
// read from GET /api/visits/{id} with the console's session cookie: the pages the visitor went
// through, in order, with the time on each, and the visit's usage data. Text only (textContent):
// titles and paths come from client websites.

import { setText, parseTime, formatClock, setTime } from "./console-util.js";
import {
  formatDuration, locationText, deviceText, sourceText, kindText, pagesText,
} from "./console-visitors.js";

const vslot = (root, name) => root.querySelector(`[data-vslot="${name}"]`);
const REFRESH_DEBOUNCE_MS = 1500; // a burst of beacons (pageview + ping) costs one request
const wide = window.matchMedia("(min-width: 1160px)"); // where the panel sits beside the chat

export class VisitPanel {
  /** @param {HTMLElement} root the pane's <aside data-slot="visit"> */
  constructor(root, paneId) {
    this.root = root;
    this.visitId = null;
    this.data = null;
    this.live = false;
    this.controller = null;
    this.timer = null;
    this.toggle = vslot(root, "toggle");
    this.body = vslot(root, "body");
    const heading = root.querySelector(".visit-heading");
    heading.id = `visit-heading-${paneId}`;
    this.body.id = `visit-body-${paneId}`;
    root.setAttribute("aria-labelledby", heading.id);
    this.toggle.setAttribute("aria-controls", this.body.id);
    this.toggle.addEventListener("click", () => this.setExpanded(!this.expanded));
    vslot(root, "retry").addEventListener("click", () => this.load(false));
    // Beside the chat when there is room; folded above it on smaller screens.
    this.setExpanded(wide.matches);
  }

  get expanded() {
    return this.toggle.getAttribute("aria-expanded") === "true";
  }

  setExpanded(on) {
    this.toggle.setAttribute("aria-expanded", on ? "true" : "false");
    this.body.hidden = !on;
    this.root.classList.toggle("is-collapsed", !on);
  }

  /** The conversation's visit id (or null): loads the visit when it changes. */
  setVisit(visitId) {
    const id = typeof visitId === "string" && visitId ? visitId : null;
    if (id === this.visitId) return;
    this.visitId = id;
    this.data = null;
    this.root.hidden = !id;
    this.root.classList.remove("has-data");
    if (id) this.load(false);
    else this.abort();
  }

  /** Whether the visitor is still browsing (in the live list). */
  setLive(live) {
    if (this.live === !!live) return;
    this.live = !!live;
    if (this.data) this.render(this.data);
  }

  /** A beacon for this visit arrived: fetch the path again, once per burst. */
  refreshSoon() {
    if (!this.visitId) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(true), REFRESH_DEBOUNCE_MS);
  }

  abort() {
    clearTimeout(this.timer);
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  async load(quiet) {
    const id = this.visitId;
    if (!id) return;
    this.abort();
    const controller = new AbortController();
    this.controller = controller;
    if (!quiet || !this.data) this.status("Loading the visit…");
    let response;
    try {
      response = await fetch(`/api/visits/${encodeURIComponent(id)}`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
        signal: controller.signal,
      });
    } catch (err) {
      if (err?.name === "AbortError" || id !== this.visitId) return;
      if (!this.data) this.status("Couldn't load the visit. Check your connection.", true);
      return;
    }
    if (id !== this.visitId || controller.signal.aborted) return;
    this.controller = null;
    if (response.status === 404) {
      // No such visit for us: tracking was off for this visitor, or the visit was deleted.
      this.data = null;
      this.root.classList.remove("has-data");
      this.status("No visit details: this visit was not tracked, or is no longer available.");
      setText(vslot(this.root, "summary"), "not tracked");
      return;
    }
    if (response.status === 401 || response.status === 403) {
      this.status("Your session has ended. Sign in again to see the visit.");
      return;
    }
    let detail = null;
    if (response.ok) {
      try {
        detail = await response.json();
      } catch {
        detail = null;
      }
    }
    if (id !== this.visitId) return;
    if (!detail || typeof detail !== "object") {
      if (!this.data) this.status("Couldn't load the visit. The server had a problem.", true);
      return;
    }
    this.data = detail;
    this.render(detail);
  }

  status(text, retry = false) {
    const p = vslot(this.root, "status");
    p.hidden = !text;
    setText(p, text);
    vslot(this.root, "retry").hidden = !retry;
    vslot(this.root, "content").hidden = !!text;
  }

  render(d) {
    this.status("");
    this.root.classList.add("has-data");
    const path = Array.isArray(d.path) ? d.path : [];
    const pages = Math.max(Number.isInteger(d.pageviews) ? d.pageviews : 0, path.length);
    const seconds = Number.isFinite(d.seconds) ? d.seconds : 0;
    setText(vslot(this.root, "summary"), `${pagesText(pages)} · ${formatDuration(seconds)}`);

    const facts = vslot(this.root, "facts");
    const started = parseTime(d.started_at);
    const last = parseTime(d.last_seen_at);
    const loc = locationText(d.location);
    const rows = [
      ["Status", this.live ? "Browsing now" : last ? `Last active ${formatClock(last)}` : "Unknown"],
      ["Visit length", formatDuration(seconds)],
      ["Pages", String(pages)],
      ["Started", started ? formatClock(started) : "Unknown", started],
      ["Visitor", kindText(d.returning)],
      ["Location", loc.text, null, loc.title],
      ["Device", deviceText(d.device)],
      ["Source", sourceText(d.channel, d.referrer), null, d.referrer || ""],
    ];
    const frag = document.createDocumentFragment();
    for (const [term, value, date, title] of rows) {
      const div = document.createElement("div");
      div.className = "visit-fact";
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      if (date) {
        const time = document.createElement("time");
        setTime(time, date, value);
        dd.append(time);
      } else {
        dd.textContent = value;
      }
      if (title) dd.title = title;
      if (term === "Status" && this.live) dd.className = "visit-live";
      div.append(dt, dd);
      frag.append(div);
    }
    facts.replaceChildren(frag);

    setText(vslot(this.root, "path-heading"), `Pages in this visit (${path.length})`);
    const ol = vslot(this.root, "path");
    const items = document.createDocumentFragment();
    const ordered = [...path].sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    ordered.forEach((p, i) => {
      const li = document.createElement("li");
      li.className = "visit-page";
      if (i === ordered.length - 1) li.classList.add("is-last");
      const title = document.createElement("p");
      title.className = "visit-page-title";
      title.textContent = p.title || p.path || "Unknown page";
      const where = document.createElement("p");
      where.className = "visit-page-path";
      where.textContent = p.title ? p.path || "" : "";
      where.hidden = !where.textContent;
      const meta = document.createElement("p");
      meta.className = "visit-page-meta";
      const at = parseTime(p.at);
      const time = document.createElement("time");
      setTime(time, at, at ? formatClock(at) : "");
      const spent = document.createElement("span");
      spent.textContent = `${formatDuration(p.seconds)} on page`;
      meta.append(time, at ? " · " : "", spent);
      if (i === ordered.length - 1 && this.live) meta.append(" · ", strong("current page"));
      li.append(title, where, meta);
      items.append(li);
    });
    ol.replaceChildren(items);
    if (!ordered.length) {
      const li = document.createElement("li");
      li.className = "visit-page visit-page-none";
      li.textContent = "No pages recorded.";
      ol.append(li);
    }
  }

  destroy() {
    this.abort();
  }
}

function strong(text) {
  const s = document.createElement("strong");
  s.textContent = text;
  return s;
}

