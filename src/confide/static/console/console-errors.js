// Server `error` frames (protocol.md "Error codes") in words an operator understands.
// The server's own `message` is a fallback only: it is written for developers.

const FRIENDLY = {
  not_found: "This conversation is no longer available.",
  forbidden: "You don't have permission to do that in this conversation.",
  rate_limited: "You're going a little fast. We'll retry in a moment.",
  text_too_long: "Messages can be at most 4,000 characters.",
  empty_text: "Empty messages are not sent.",
  internal: "The server had a problem and nothing was changed. Please try again.",
  frame_too_large: "That message is too large to send.",
};

export function friendly(code, type, serverMessage) {
  if (type === "invite") {
    // tracking.md: not_found / invalid_state when the visitor has left (or was never ours).
    if (code === "not_found") return "This visitor is no longer on your sites. Invitation not sent.";
    if (code === "invalid_state") return "This visitor has left the site. Invitation not sent.";
    if (code === "rate_limited") return "You're going a little fast. Try again in a moment.";
  }
  if (code === "invalid_state") {
    if (type === "accept") return "This chat was already accepted by someone else, or closed.";
    if (type === "send") return "This chat is closed, so the message was not delivered.";
    if (type === "close") return "This chat is already closed.";
    return "This chat's status changed, so that didn't go through.";
  }
  if (code === "internal" && type === "send") return "The server had a problem. Retrying your message…";
  return FRIENDLY[code] || serverMessage || `Something went wrong (${code}). Reload the page if it keeps happening.`;
}
