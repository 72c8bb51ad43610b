/*! Confide loader (docs/protocol.md, docs/tracking.md): runs on the host page, so it stays small.
 * Chat, invitations and the statistics policy live in our iframe; for it, this keeps _cfv and
 * _cfvisit on the host, sends its beacons from the host's origin and reads the CMP's consent. */
(function () {
  "use strict";
  var w = window, d = document, N = navigator, L = location, prior = w.Confide;
  if (prior && prior._loaded) return;
  var me = d.currentScript || d.querySelector('script[data-site][src*="widget.js"]');
  var site = me && me.getAttribute("data-site"), C = "_cfv_" + site, K = "_cfvisit_" + site;
  if (!site) return;
  var ORIGIN = new URL(me.src, L.href).origin, T = ORIGIN + "/api/t", SMALL = w.matchMedia("(max-width: 480px)");
  var root, frame, button, badge, ready, isOpen, teaser, consent, leaving, klaro, dl, pending = [], handlers = {}, verdicts = {};

  function emit(name, data) {
    (handlers[name] || []).slice().forEach(function (fn) {
      try { fn(data); } catch (e) { setTimeout(function () { throw e; }); }
    });
  }
  function post(msg) {
    msg.confide = 1;
    ready ? frame.contentWindow.postMessage(msg, ORIGIN) : pending.push(msg);
  }
  var api = {
    _loaded: true,
    open: function () { show(true); post({ cmd: "open" }); },
    close: function () { show(false); post({ cmd: "close" }); },
    on: function (name, fn) {
      if (typeof fn == "function") (handlers[name] = handlers[name] || []).push(fn), name == "ready" && ready && fn();
    },
    off: function (name, fn) {
      handlers[name] = (handlers[name] || []).filter(function (h) { return h !== fn; });
    },
    consent: function (v) { /^(granted|denied)$/.test(v) && post({ cmd: "consent", consent: consent = v }); }
  };

  function ids(m) { // {get}: read the identifiers; {cfv, visit}: keep them; {}: delete them
    try {
      var c = ("; " + d.cookie).split("; " + C + "=")[1];
      c = c && c.slice(0, 22);
      if (m.get) return post({ cmd: "ids", cfv: c, visit: sessionStorage.getItem(K), ok: N.cookieEnabled });
      if (m.visit) {
        c || /^[\w-]{22}$/.test(m.cfv) && (d.cookie = C + "=" + m.cfv + ";path=/;max-age=34214400;samesite=lax" + (L.protocol == "https:" ? ";secure" : ""));
        sessionStorage.setItem(K, m.visit);
      } else {
        d.cookie = C + "=;path=/;max-age=0";
        sessionStorage.removeItem(K);
      }
    } catch (e) { m.get && post({ cmd: "ids" }); } // blocked
  }
  function beacon(m) {
    if (m.leave) return leaving = m.body; // for sendBeacon when the page is hidden or left
    fetch(T, { method: "POST", body: m.body, keepalive: true }).then(function (r) { return r.json(); })
      .then(function (r) { post({ cmd: "reply", reply: r }); }, function () {});
  }
  function leave() {
    leaving && N.sendBeacon(T, leaving);
    leaving = 0;
  }

  // CMPs: Klaro (service "confide"), CookieConsent v3 ("analytics"), Consent Mode (dataLayer, read only)
  function from(source, granted) {
    verdicts[source] !== granted && api.consent((verdicts[source] = granted) ? "granted" : "denied");
  }
  function klaroRead() { klaro.confirmed && from("k", klaro.getConsent("confide")); }
  function cookieConsent() {
    try { CookieConsent.validConsent() && from("c", CookieConsent.acceptedCategory("analytics")); } catch (e) {}
  }
  function cmps() {
    try {
      var m = w.klaro.getManager(); // then watched: saved choices only
      if (m != klaro && m.getService("confide")) {
        m.watch({ update: function (x, name) { name != "consents" && klaroRead(); } });
        klaroRead(klaro = m);
      }
    } catch (e) {}
    var l = w.dataLayer, g = {}, i = 0, c;
    if (l && l.length !== dl) {
      for (dl = l.length; i < dl; i++) (c = l[i]) && c[0] == "consent" && c[2] && c[2].analytics_storage && (g[c[1]] = c[2].analytics_storage);
      (c = g.update || g["default"]) && from("g", c == "granted");
    }
  }

  // Inline !important styles beat any host rule, and a strict host CSP allows them.
  function css(el, rules) {
    for (var k in rules) el.style.setProperty(k, rules[k], "important");
  }
  function place() {
    var full = isOpen && SMALL.matches, t = !isOpen && teaser; // the teaser's height
    css(frame, {
      all: "initial", position: "fixed", "z-index": "2147483647", border: "0", margin: "0", padding: "0",
      background: "#fff", "color-scheme": "light", display: isOpen || t ? "block" : "none",
      top: full ? "0" : "auto", right: full ? "0" : "20px", bottom: full ? "0" : "92px",
      width: full ? "100%" : "380px", height: full ? "100%" : t ? t + "px" : "min(600px, calc(100% - 112px))",
      "max-width": full ? "100%" : "calc(100% - 40px)", "border-radius": full ? "0" : "16px",
      "box-shadow": full ? "none" : "0 12px 48px rgba(16,24,40,.22), 0 2px 8px rgba(16,24,40,.12)"
    });
    button.hidden = full; // the phone panel has its own minimise button
  }
  function show(open) {
    if (open == !isOpen) {
      isOpen = open;
      button.setAttribute("aria-expanded", open);
      button.setAttribute("aria-label", open ? "Close chat" : "Open chat");
      place();
      emit(open ? "open" : "close");
    }
  }
  function setUnread(n) {
    badge.textContent = (n |= 0) > 9 ? "9+" : n;
    badge.hidden = n < 1;
    badge.setAttribute("aria-label", n + " unread");
  }

  var STYLE =
    ":host{all:initial}" +
    "button{all:initial;box-sizing:border-box;position:fixed;right:20px;bottom:20px;z-index:2147483647;" +
    "width:56px;height:56px;border-radius:50%;background:#3056d3;color:#fff;cursor:pointer;" +
    "display:flex;align-items:center;justify-content:center;box-shadow:0 4px 14px rgba(16,24,40,.28);transition:transform .15s}button:hover{transform:scale(1.06)}" +
    "button:focus-visible{outline:3px solid #fff;box-shadow:0 0 0 6px #3056d3,0 4px 14px rgba(16,24,40,.28)}" +
    "[hidden],[aria-expanded=true] path,path+path{display:none}[aria-expanded=true] path+path{display:block}" +
    "svg{width:28px;height:28px;fill:currentColor;stroke:currentColor}" +
    "span{all:initial;position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;" +
    "box-sizing:border-box;border-radius:10px;background:#d92d20;color:#fff;border:2px solid #fff;" +
    "font:700 11px/16px system-ui,sans-serif;text-align:center}" +
    "@media (prefers-reduced-motion:reduce){button{transition:none}}";
  var ICONS = '<svg viewBox="0 0 24 24" aria-hidden="true"><path stroke-width="0" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z"/>' +
    '<path stroke-width="2" d="m6 6 12 12M18 6 6 18"/></svg>';

  function build() {
    var host = d.createElement("div");
    css(host, { all: "initial", display: "block", position: "static" });
    root = host.attachShadow({ mode: "closed" });
    try { // not subject to the host's CSP, unlike <style>
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      root.appendChild(d.createElement("style")).textContent = STYLE;
    }
    button = d.createElement("button");
    button.type = "button";
    button.innerHTML = ICONS; // static markup only
    badge = button.appendChild(d.createElement("span"));
    button.onclick = function () {
      if (isOpen) return api.close();
      api.open();
      frame.focus();
    };
    frame = d.createElement("iframe");
    frame.title = "Chat";
    frame.referrerPolicy = "origin";
    frame.src = ORIGIN + "/widget/frame?site=" + encodeURIComponent(site);
    root.append(frame, button);
    setUnread(0);
    isOpen = 1;
    show(false);
    SMALL.onchange = place;
    d.body.appendChild(host);
  }

  function onMessage(e) {
    var m = e.data;
    // Only our own frame may drive us (other windows could forge messages).
    if (e.origin != ORIGIN || e.source != frame.contentWindow || !m || m.confide !== 1) return;
    if (m.event == "ready") {
      var nav = performance.getEntriesByType("navigation")[0];
      ready = frame.contentWindow.postMessage({
        confide: 1, cmd: "init", host: L.origin, page: { path: L.pathname, title: d.title, search: L.search },
        signals: { dnt: N.doNotTrack == "1" || w.doNotTrack == "1", gpc: N.globalPrivacyControl === true },
        consent: consent, referrer: d.referrer, nav: nav && nav.type, ping: +me.getAttribute("data-ping") || 15e3
      }, ORIGIN) || 1;
      pending.splice(0).forEach(post);
      emit("ready");
    } else if (m.event == "state") {
      var inside = root.activeElement == frame;
      teaser = m.teaser | 0;
      isOpen == !!m.open ? place() : show(!!m.open);
      !m.open && !teaser && inside && button.focus(); // minimised inside the frame
      setUnread(m.unread);
    } else if (m.event == "message") {
      emit("message", { from: m.from == "agent" ? "agent" : "visitor", at: m.at }); // never the text
    } else if (m.event == "ids") {
      ids(m);
    } else if (m.event == "beacon") {
      beacon(m);
    }
  }

  function start() {
    build();
    w.addEventListener("message", onMessage);
    w.addEventListener("cc:onConsent", cookieConsent);
    w.addEventListener("cc:onChange", cookieConsent);
    w.addEventListener("pagehide", leave);
    d.addEventListener("visibilitychange", function () { d.hidden && leave(); });
    w.Confide = api;
    cookieConsent();
    cmps();
    setInterval(cmps, 1e3);
    // Replay the stub's queue of [method, ...args].
    for (var q = (prior && prior.q) || [], i = 0, c; i < q.length; i++) {
      c = [].slice.call(q[i]);
      typeof api[c[0]] == "function" && api[c[0]].apply(api, c.slice(1));
    }
  }

  d.body ? start() : d.addEventListener("DOMContentLoaded", start);
})();
