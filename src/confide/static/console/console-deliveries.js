// The Deliveries page: lead deliveries (all, or the failed ones with a Retry button) from
// GET /api/deliveries, and the destinations leads go to from GET /api/destinations.
// Text only (textContent): destination names, targets and errors come from configuration and
// from remote servers.

import { api, el, setText, setTime, parseUtc as utc, formatClock } from "./console-util.js";

const $ = (id) => document.getElementById(id);
const app = $("deliveries-app");
const canRetry = app.dataset.canRetry === "yes";
let filter = app.dataset.state === "dead" ? "dead" : "";

const STATE = {
  pending: ["Waiting to send", "pending"],
  running: ["Sending", "running"],
  done: ["Delivered", "done"],
  dead: ["Failed", "dead"],
  canceled: ["Cancelled", "canceled"],
};
const EVENT = { "lead.created": "New lead", "lead.corrected": "Correction", "lead.erased": "Erasure notice", "transfer.erased": "Erasure notice (onward)" };
const KIND = { email: "Email", webhook: "Webhook" };
const EMPTY = {
  "": [
    "No deliveries yet",
    "Each time a lead is sent to a dealership's email address or webhook, it is listed here. Leads for dealerships without a destination go to their client portal.",
  ],
  dead: ["No failed deliveries", "Every delivery went through or is still being retried."],
};

function cell(label, ...children) {
  const td = el("td");
  td.dataset.label = label;
  td.append(...children);
  return td;
}

function notice(text, kind = "info") {
  const box = $("jobs-notice");
  box.replaceChildren();
  if (!text) return;
  const p = el("p", `notice notice-${kind}`);
  p.append(el("span", null, text));
  requestAnimationFrame(() => box.append(p));
}

// ───────────────────────────── deliveries ─────────────────────────────

async function loadJobs() {
  const asked = filter;
  const status = $("jobs-status");
  status.hidden = false;
  setText(status, asked === "dead" ? "Loading failed deliveries…" : "Loading deliveries…");
  const res = await api("GET", asked ? `/api/deliveries?state=${asked}` : "/api/deliveries");
  if (asked !== filter) return; // the filter changed while we waited
  if (!res.ok || !Array.isArray(res.data)) {
    setText(status, res.message || "Couldn't load the deliveries.");
    $("jobs-wrap").hidden = true;
    $("jobs-empty").hidden = true;
    return;
  }
  status.hidden = true;
  renderJobs(res.data);
}

function renderJobs(jobs) {
  const body = $("jobs-body");
  const focusedId = body.contains(document.activeElement) ? document.activeElement.dataset.job : null;
  const frag = document.createDocumentFragment();
  for (const job of jobs) frag.append(jobRow(job));
  body.replaceChildren(frag);
  $("jobs-wrap").hidden = jobs.length === 0;
  $("jobs-empty").hidden = jobs.length > 0;
  const [title, text] = EMPTY[filter];
  setText($("jobs-empty-title"), title);
  setText($("jobs-empty-text"), text);
  setText($("jobs-caption"), filter === "dead" ? "Failed deliveries, most recent first" : "Lead deliveries, most recent first");
  if (focusedId) {
    const again = body.querySelector(`[data-job="${CSS.escape(focusedId)}"]`);
    (again || $("jobs-heading")).focus();
  }
}

function jobRow(job) {
  const tr = el("tr");
  tr.dataset.id = String(job.id);
  const [stateText, stateKey] = STATE[job.state] || [job.state || "Unknown", "unknown"];
  tr.className = `dv-row dv-row-${stateKey}`;

  const lead = el("span", "dv-lead");
  lead.append(el("span", "dv-event", EVENT[job.event] || job.event || "Delivery"));
  if (job.lead_id) {
    const ref = el("span", "dv-ref", `Ref ${String(job.lead_id).slice(0, 8)}`);
    ref.title = `Lead ${job.lead_id}`;
    lead.append(ref);
  }

  const dest = el("span", "dv-dest");
  dest.append(el("span", "dv-dest-name", job.destination?.name || "Unknown destination"));
  dest.append(el("span", "dv-kind", KIND[job.destination?.kind] || job.destination?.kind || ""));

  const badge = el("span", `dv-state dv-state-${stateKey}`, stateText);
  const error = el("span", "dv-error", job.last_error || "—");
  if (!job.last_error) error.classList.add("is-none");
  const at = utc(job.updated_at);
  const time = el("time");
  setTime(time, at, formatClock(at));

  const actions = el("span", "dv-actions");
  if (job.state === "dead" && canRetry) {
    const retry = el("button", "btn btn-quiet btn-small", "Retry");
    retry.type = "button";
    retry.dataset.job = String(job.id);
    retry.setAttribute("aria-label", `Retry delivery to ${job.destination?.name || "this destination"}`);
    retry.addEventListener("click", () => retryJob(job, retry));
    actions.append(retry);
  }

  tr.append(
    cell("Lead", lead),
    cell("Destination", dest),
    cell("State", badge),
    cell("Attempts", String(job.attempts ?? 0)),
    cell("Last error", error),
    cell("Updated", time),
    cell("", actions),
  );
  tr.children[3].classList.add("dv-num");
  if (!actions.children.length) tr.lastElementChild.classList.add("is-empty");
  return tr;
}

async function retryJob(job, button) {
  button.disabled = true;
  setText(button, "Retrying…");
  const res = await api("POST", `/api/deliveries/${encodeURIComponent(job.id)}/retry`);
  if (!res.ok) {
    button.disabled = false;
    setText(button, "Retry");
    button.focus();
    notice(res.message, "error");
    return;
  }
  notice(`Delivery to ${job.destination?.name || "the destination"} is queued again.`, "success");
  $("jobs-heading").focus();
  await loadJobs();
}

// ───────────────────────────── destinations ─────────────────────────────

async function loadDestinations() {
  const status = $("dest-status");
  const res = await api("GET", "/api/destinations");
  if (!res.ok || !Array.isArray(res.data)) {
    setText(status, res.message || "Couldn't load the destinations.");
    return;
  }
  status.hidden = true;
  const list = $("dest-list");
  list.replaceChildren(...res.data.map(destinationItem));
  list.hidden = res.data.length === 0;
  $("dest-empty").hidden = res.data.length > 0;
}

function destinationItem(d) {
  const li = el("li", "dv-dest-card");
  const title = el("p", "dv-dest-title", d.name || d.target || "Destination");
  const head = el("p", "dv-dest-head");
  head.append(el("span", "dv-chip", KIND[d.kind] || d.kind || ""));
  if (d.region) head.append(el("span", "dv-chip", `Region ${d.region}`));
  if (d.enabled === false) head.append(el("span", "dv-chip dv-chip-off", "Disabled"));
  const target = el("p", "dv-target", d.target || "");
  li.append(title, head, target);
  if (d.personal_data === false) {
    const warn = el("div", "dv-warn");
    warn.append(el("p", "dv-warn-title", "Outside the EU/UK: receives leads without personal data"));
    if (d.note) warn.append(el("p", "dv-warn-text", d.note));
    li.append(warn);
  }
  return li;
}

// ───────────────────────────── filter ─────────────────────────────

function setFilter(value) {
  filter = value === "dead" ? "dead" : "";
  for (const b of document.querySelectorAll(".seg[data-filter]")) {
    b.setAttribute("aria-pressed", b.dataset.filter === filter ? "true" : "false");
  }
  const url = filter ? "/console/deliveries?state=dead" : "/console/deliveries";
  history.replaceState(null, "", url);
  document.title = document.title.replace(/^(Failed deliveries|Deliveries)/, filter ? "Failed deliveries" : "Deliveries");
  notice("");
  loadJobs();
}

for (const b of document.querySelectorAll(".seg[data-filter]")) {
  b.addEventListener("click", () => setFilter(b.dataset.filter));
}

Promise.all([loadJobs(), loadDestinations()]).finally(() => (app.dataset.ready = "1"));
