// Getting an operator's attention when a visitor starts waiting: a short chime (synthesised with
// WebAudio, so there is no audio file to host) and, if allowed, a desktop notification.
// Privacy: a notification names the organisation and site only, never what the visitor wrote,
// because notifications show on lock screens and shared monitors.

const SOUND_KEY = "confide.console.sound";

let audioCtx = null;

/**
 * Browsers only let a page play sound after a user gesture. Create/resume the AudioContext on
 * the first click or key press; before that, chimes are silently skipped.
 */
export function unlockAudioOnGesture() {
  const unlock = () => {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try {
      audioCtx = audioCtx || new Ctx();
      if (audioCtx.state === "suspended") audioCtx.resume();
    } catch {
      audioCtx = null;
    }
    if (audioCtx && audioCtx.state !== "suspended") {
      window.removeEventListener("pointerdown", unlock, true);
      window.removeEventListener("keydown", unlock, true);
    }
  };
  window.addEventListener("pointerdown", unlock, true);
  window.addEventListener("keydown", unlock, true);
}

export function soundEnabled() {
  try {
    return localStorage.getItem(SOUND_KEY) !== "off";
  } catch {
    return true;
  }
}

export function setSoundEnabled(on) {
  try {
    localStorage.setItem(SOUND_KEY, on ? "on" : "off");
  } catch {
    /* not persisted: fine */
  }
}

/** Two soft rising notes, about 0.4 s: noticeable without being alarming. */
export function chime() {
  if (!soundEnabled() || !audioCtx) return false;
  // resume() settles asynchronously (e.g. the gesture that unlocked audio is this very click).
  if (audioCtx.state === "suspended") {
    audioCtx.resume().then(tones, () => {});
    return true;
  }
  if (audioCtx.state !== "running") return false;
  tones();
  return true;
}

function tones() {
  const t0 = audioCtx.currentTime + 0.01;
  [[659.25, 0], [987.77, 0.14]].forEach(([freq, offset]) => {
    const osc = audioCtx.createOscillator();
    const gain = audioCtx.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    const start = t0 + offset;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.18, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.26);
    osc.connect(gain).connect(audioCtx.destination);
    osc.start(start);
    osc.stop(start + 0.3);
  });
}

export function notificationsSupported() {
  return "Notification" in window && window.isSecureContext;
}

/** Show the "Enable notifications" offer only while the choice is still open. */
export function setupNotifyButton(offer, button) {
  if (!notificationsSupported() || Notification.permission !== "default") {
    offer.hidden = true;
    return;
  }
  offer.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await Notification.requestPermission();
    } catch {
      /* blocked or unsupported: nothing to do */
    }
    offer.hidden = Notification.permission !== "default";
  });
}

/**
 * "New chat on Demo Motors – Main Street". Only when the console is not in front of the
 * operator: they already see the list (and hear the chime) otherwise.
 */
export function notifyNewChat(orgName, siteName, tag, onClick) {
  if (!notificationsSupported() || Notification.permission !== "granted") return null;
  if (document.visibilityState === "visible" && document.hasFocus()) return null;
  const where = [orgName, siteName].filter(Boolean).join(" – ");
  try {
    const n = new Notification("Confide: visitor waiting", {
      body: where ? `New chat on ${where}` : "New chat waiting",
      tag: `confide-${tag}`, // one notification per conversation, even if re-announced
    });
    n.onclick = () => {
      window.focus();
      n.close();
      onClick();
    };
    return n;
  } catch {
    return null; // e.g. Android Chrome requires a service worker for notifications
  }
}
