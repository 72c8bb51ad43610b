/*! Confide widget loader. Runs on the HOST page: it must stay tiny, make no third-party requests,
 * and leave no trace on the host (no cookies, storage, URL changes or globals except window.Confide).
 * Everything the visitor types lives in the iframe, which is served from our origin. */
(function () {
  "use strict";
  var w = window, d = document;
  var prior = w.Confide;
  if (prior && prior._loaded) return; // the snippet was pasted twice

  // An async script has no document.currentScript in every browser, so fall back to a query.
  var me = d.currentScript || d.querySelector('script[data-site][src*="widget.js"]');
  var site = me && me.getAttribute("data-site");
  if (!site) return;
  var ORIGIN = new URL(me.src, location.href).origin;
  var BRAND = "#3056d3";
  var SMALL = w.matchMedia("(max-width: 480px)");

  var root, frame, button, badge, ready = false, isOpen = false, pending = [];
  var handlers = {};

  // ---- host API ------------------------------------------------------------------------------
  function emit(name, data) {
    (handlers[name] || []).slice().forEach(function (fn) {
      try { fn(data); } catch (e) { setTimeout(function () { throw e; }); } // a host bug must not stop us
    });
  }
  function post(msg) {
    msg.confide = 1;
    if (ready) frame.contentWindow.postMessage(msg, ORIGIN); else pending.push(msg);
  }
  var api = {
    _loaded: true,
    open: function () { show(true); post({ cmd: "open" }); },
    close: function () { show(false); post({ cmd: "close" }); },
    on: function (name, fn) {
      if (typeof fn === "function") (handlers[name] = handlers[name] || []).push(fn);
      if (name === "ready" && ready && typeof fn === "function") fn();
    },
    off: function (name, fn) {
      handlers[name] = (handlers[name] || []).filter(function (h) { return h !== fn; });
    }
  };

  // ---- layout --------------------------------------------------------------------------------
  // Inline !important styles win over any host stylesheet rule, even an !important one. Set through
  // the CSSOM, which a host's strict CSP (no 'unsafe-inline' styles) still allows.
  function css(el, rules) {
    for (var k in rules) el.style.setProperty(k, rules[k], "important");
  }

  function place() {
    var full = SMALL.matches;
    css(frame, {
      all: "initial", position: "fixed", "z-index": "2147483647", border: "0", margin: "0",
      padding: "0", background: "#fff", "color-scheme": "light",
      display: isOpen ? "block" : "none",
      top: full ? "0" : "auto", right: full ? "0" : "20px", bottom: full ? "0" : "92px",
      width: full ? "100%" : "380px", height: full ? "100%" : "min(600px, calc(100% - 112px))",
      "max-width": full ? "100%" : "calc(100% - 40px)",
      "border-radius": full ? "0" : "16px",
      "box-shadow": full ? "none" : "0 12px 48px rgba(16,24,40,.22), 0 2px 8px rgba(16,24,40,.12)"
    });
    // On a phone the panel covers the screen and has its own minimise button.
    button.hidden = full && isOpen;
  }

  function show(open) {
    if (open === isOpen) return;
    isOpen = open;
    button.setAttribute("aria-expanded", String(open));
    button.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    setIcons();
    place();
    emit(open ? "open" : "close");
  }

  function setUnread(n) {
    n = Math.max(0, n | 0);
    badge.textContent = n > 9 ? "9+" : String(n);
    badge.hidden = !n;
    badge.setAttribute("aria-label", n + " unread");
  }

  var STYLE =
    ":host{all:initial}" +
    "button{all:initial;box-sizing:border-box;position:fixed;right:20px;bottom:20px;z-index:2147483647;" +
    "width:56px;height:56px;border-radius:50%;background:" + BRAND + ";color:#fff;cursor:pointer;" +
    "display:flex;align-items:center;justify-content:center;" +
    "box-shadow:0 4px 14px rgba(16,24,40,.28);transition:transform .15s ease}" +
    "button:hover{transform:scale(1.06)}" +
    "button:focus-visible{outline:3px solid #fff;box-shadow:0 0 0 6px " + BRAND + ",0 4px 14px rgba(16,24,40,.28)}" +
    "button[hidden],span[hidden],svg[hidden]{display:none}" +
    "svg{width:28px;height:28px;fill:currentColor}" +
    "span{all:initial;position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;" +
    "box-sizing:border-box;border-radius:10px;background:#d92d20;color:#fff;border:2px solid #fff;" +
    "font:700 11px/16px system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;text-align:center}" +
    "@media (prefers-reduced-motion:reduce){button{transition:none}}";

  var ICON_CHAT = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z"/></svg>';
  var ICON_CLOSE = '<svg viewBox="0 0 24 24" aria-hidden="true" hidden><path d="M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4-5.6-5.6L6.4 19 5 17.6l5.6-5.6L5 6.4z"/></svg>';

  function build() {
    var host = d.createElement("div");
    css(host, { all: "initial", display: "block", position: "static" });
    root = host.attachShadow({ mode: "closed" });
    // A constructed stylesheet is not subject to the host's CSP; <style> is the fallback.
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      var style = d.createElement("style");
      style.textContent = STYLE;
      root.appendChild(style);
    }
    button = d.createElement("button");
    button.type = "button";
    // Static markup only: nothing from the network or the conversation is ever parsed as HTML.
    button.innerHTML = ICON_CHAT + ICON_CLOSE;
    badge = d.createElement("span");
    button.appendChild(badge);
    button.addEventListener("click", function () {
      if (isOpen) return api.close();
      api.open();
      frame.focus(); // keyboard users land in the chat, not back on the host page
    });
    frame = d.createElement("iframe");
    frame.title = "Chat";
    frame.setAttribute("referrerpolicy", "origin");
    frame.src = ORIGIN + "/widget/frame?site=" + encodeURIComponent(site);
    root.appendChild(frame);
    root.appendChild(button);
    setUnread(0);
    setIcons();
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-label", "Open chat");
    place();
    if (SMALL.addEventListener) SMALL.addEventListener("change", place);
    d.body.appendChild(host);
  }

  function setIcons() {
    var icons = button.querySelectorAll("svg");
    icons[0].hidden = isOpen;
    icons[1].hidden = !isOpen;
  }

  // ---- frame → loader ------------------------------------------------------------------------
  function onMessage(e) {
    // Only our own frame may drive the panel; other windows on the page could forge messages.
    if (e.origin !== ORIGIN || e.source !== frame.contentWindow) return;
    var m = e.data;
    if (!m || m.confide !== 1) return;
    if (m.event === "ready") {
      ready = true;
      frame.contentWindow.postMessage({
        confide: 1, cmd: "init", host: location.origin,
        page: { path: location.pathname, title: d.title },
        signals: { dnt: navigator.doNotTrack === "1", gpc: navigator.globalPrivacyControl === true }
      }, ORIGIN);
      pending.splice(0).forEach(post);
      emit("ready");
    } else if (m.event === "state") {
      // Minimised from inside the panel: give focus back to the launcher rather than losing it.
      var inside = root.activeElement === frame;
      show(!!m.open);
      if (!m.open && inside) button.focus();
      setUnread(m.unread);
    } else if (m.event === "message") {
      emit("message", { from: m.from === "agent" ? "agent" : "visitor", at: m.at }); // never the text
    }
  }

  function start() {
    build();
    w.addEventListener("message", onMessage);
    w.Confide = api;
    // Replay calls queued by a stub: entries are [method, ...args] arrays or arguments objects.
    var q = (prior && prior.q) || [];
    for (var i = 0; i < q.length; i++) {
      var c = Array.prototype.slice.call(q[i]);
      if (typeof api[c[0]] === "function") api[c[0]].apply(api, c.slice(1));
    }
  }

  if (d.body) start(); else d.addEventListener("DOMContentLoaded", start);
})();
