// Progressive enhancements for every console page (history and transcript are server-rendered
// and work without this): show times in the operator's own time zone, highlight search matches.
// Text is only ever split into text nodes and <mark> elements, never parsed as HTML.

const fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

for (const el of document.querySelectorAll("time.js-local[datetime]")) {
  const d = new Date(el.getAttribute("datetime"));
  if (Number.isNaN(d.getTime())) continue;
  // data-format="time": message times inside a transcript whose header already gives the date.
  el.textContent = (el.dataset.format === "time" ? timeOnly : fmt).format(d);
  el.title = full.format(d);
}

function highlight(el, words) {
  const text = el.textContent;
  const lower = text.toLocaleLowerCase();
  // Only safe when case folding keeps offsets (true for the languages we serve).
  if (lower.length !== text.length) return;
  const frag = document.createDocumentFragment();
  let from = 0;
  for (;;) {
    // The earliest match of any search word from here on.
    let at = -1;
    let len = 0;
    for (const w of words) {
      const i = lower.indexOf(w, from);
      if (i !== -1 && (at === -1 || i < at || (i === at && w.length > len))) {
        at = i;
        len = w.length;
      }
    }
    if (at === -1) break;
    frag.append(text.slice(from, at));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(at, at + len);
    frag.append(mark);
    from = at + len;
  }
  if (from === 0) return;
  frag.append(text.slice(from));
  el.replaceChildren(frag);
}

for (const el of document.querySelectorAll("[data-highlight]")) {
  const words = (el.dataset.highlight || "")
    .toLocaleLowerCase()
    .split(/\s+/)
    .map((w) => w.replace(/^["']+|["']+$/g, ""))
    .filter((w) => w.length >= 2);
  if (words.length) highlight(el, words);
}
