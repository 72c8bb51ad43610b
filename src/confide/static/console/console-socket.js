// The console's WebSocket: connect, say hello, keep the line alive, reconnect with backoff.
// It knows nothing about conversations; console.js decides what to (re)send after `welcome`.

const BACKOFF_START_MS = 500; // protocol.md "Delivery guarantees": 0.5 s doubling to 15 s, ±50 %
const BACKOFF_MAX_MS = 15000;
const PING_EVERY_MS = 25000; // well under common proxy idle timeouts (60 s)
const PONG_GRACE_MS = 10000; // no frame at all this long after a ping: the line is dead

// Handshake refusals (protocol.md "Connecting"): reconnecting cannot fix these.
const FATAL_CLOSE = { 4401: "session", 4403: "origin", 4400: "version" };

/** Delay before reconnect attempt n (0-based): exponential, capped, with ±50 % jitter. */
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** attempt);
  return Math.round(base * (0.5 + random()));
}

export class ConsoleSocket {
  /**
   * @param {string} url absolute ws(s) URL of /ws/console?v=1
   * @param {object} handlers onFrame(frame), onStatus(state, detail), onFatal(reason)
   *   state is one of "connecting", "connected", "reconnecting", "offline".
   */
  constructor(url, handlers) {
    this.url = url;
    this.h = handlers;
    this.ws = null;
    this.ready = false; // true between `welcome` and close: only then may frames be sent
    this.attempt = 0;
    this.everWelcomed = false;
    this.stopped = false;
    this.timer = null;
    this.pingTimer = null;
    this.deadTimer = null;
    this.failuresWithoutOpen = 0;

    // Come back at once when the network does, instead of waiting out the backoff.
    window.addEventListener("online", () => this.replaceSocket());
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.clearHeartbeat();
    if (this.ws) this.ws.close(1000, "bye");
  }

  /** Send a frame if the session is established; false means "not now, keep it for later". */
  send(frame) {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    clearTimeout(this.timer);
    this.h.onStatus(this.everWelcomed ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    let opened = false;

    ws.addEventListener("open", () => {
      opened = true;
      this.failuresWithoutOpen = 0;
      // hello must be the first frame (error hello_required otherwise); `ready` waits for welcome.
      ws.send(JSON.stringify({ type: "hello", v: 1 }));
    });

    ws.addEventListener("message", (ev) => {
      if (ws !== this.ws) return;
      this.armDeadTimer(false);
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return; // the server only sends JSON; ignore anything else rather than crash
      }
      if (!frame || typeof frame !== "object") return;
      if (frame.type === "welcome") {
        this.ready = true;
        this.attempt = 0;
        this.everWelcomed = true;
        this.startHeartbeat();
        this.h.onStatus("connected");
      }
      this.h.onFrame(frame);
    });

    ws.addEventListener("close", (ev) => {
      if (ws !== this.ws) return;
      this.ready = false;
      this.ws = null;
      this.clearHeartbeat();
      if (this.stopped) return;
      const fatal = FATAL_CLOSE[ev.code];
      if (fatal) {
        this.stopped = true;
        this.h.onStatus("offline", fatal);
        this.h.onFatal(fatal);
        return;
      }
      if (!opened) this.failuresWithoutOpen += 1;
      this.scheduleReconnect();
    });
    // "error" is always followed by "close"; nothing to do here.
  }

  scheduleReconnect() {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.h.onStatus(this.everWelcomed ? "reconnecting" : "connecting", { retryInMs: delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
    // A refused handshake often reaches the browser as a bare 1006, hiding 4401. After a few
    // failures, ask the page itself whether the session is still valid.
    const f = this.failuresWithoutOpen;
    if (f === 3 || (f > 3 && f % 10 === 0)) {
      this.checkSession();
    }
  }

  /** After a network change the old socket may be silently dead: replace it at once. */
  replaceSocket() {
    if (this.stopped) return;
    const old = this.ws;
    if (old) {
      // Forget it first: its close listener ignores a socket that is no longer current.
      this.ws = null;
      this.ready = false;
      this.clearHeartbeat();
      try {
        old.close();
      } catch {}
    }
    this.reconnectSoon();
  }

  reconnectSoon() {
    if (this.stopped || this.ws) return;
    this.attempt = 0;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), 100);
  }

  async checkSession() {
    try {
      const res = await fetch(window.location.pathname, {
        method: "GET",
        credentials: "same-origin",
        redirect: "manual",
        headers: { Accept: "text/html" },
        cache: "no-store",
      });
      // A redirect (to the login page) or 401/403 means the session is gone.
      if (res.type === "opaqueredirect" || res.status === 401 || res.status === 403) {
        this.stop();
        this.h.onStatus("offline", "session");
        this.h.onFatal("session");
      }
    } catch {
      /* offline: keep retrying */
    }
  }

  startHeartbeat() {
    this.clearHeartbeat();
    this.pingTimer = setInterval(() => {
      if (this.send({ type: "ping" })) this.armDeadTimer(true);
    }, PING_EVERY_MS);
  }

  /** After a ping, expect some frame within the grace period; any frame proves the line lives. */
  armDeadTimer(afterPing) {
    clearTimeout(this.deadTimer);
    this.deadTimer = null;
    if (!afterPing) return;
    this.deadTimer = setTimeout(() => {
      // Half-open TCP: close() may never fire "close", so drop the socket ourselves.
      const ws = this.ws;
      this.ws = null;
      this.ready = false;
      this.clearHeartbeat();
      try {
        ws && ws.close(4000, "no pong");
      } catch {
        /* already closing */
      }
      this.scheduleReconnect();
    }, PONG_GRACE_MS);
  }

  clearHeartbeat() {
    clearInterval(this.pingTimer);
    clearTimeout(this.deadTimer);
    this.pingTimer = null;
    this.deadTimer = null;
  }
}
