// Progressive enhancements for the reports and leads (the pages are complete without this):
// a styled tooltip and column highlight on the daily chart, an export menu that closes like a
// menu, focus on a form's error. Text is only ever set with textContent, never parsed as HTML.

// Phones: the top bar's sections and the portal's tabs scroll sideways; bring the current ones
// to the middle, clear of the sign-out button at the bar's end.
for (const current of document.querySelectorAll(
  ".topnav [aria-current='page'], .topnav .in-section, .portal-tabs [aria-current='page']",
)) {
  current.scrollIntoView({ block: "nearest", inline: "center" });
}

for (const box of document.querySelectorAll("[data-chart='series']")) {
  const svg = box.querySelector("svg.chart-series");
  if (!svg) continue;
  const tip = document.createElement("div");
  tip.className = "chart-tip";
  tip.hidden = true;
  tip.setAttribute("aria-hidden", "true");
  box.append(tip);
  let active = null;

  // Move each day's <title> to a data attribute: the styled tooltip replaces the native one.
  for (const hit of svg.querySelectorAll(".chart-hit")) {
    const title = hit.querySelector("title");
    if (!title) continue;
    hit.dataset.tip = title.textContent;
    title.remove();
  }

  const hide = () => {
    tip.hidden = true;
    active?.classList.remove("is-active");
    active = null;
  };

  svg.addEventListener("pointermove", (event) => {
    const hit = event.target.closest?.(".chart-hit");
    if (!hit || !hit.dataset.tip) return hide();
    if (hit !== active) {
      active?.classList.remove("is-active");
      active = hit;
      hit.classList.add("is-active");
      const [day, numbers] = hit.dataset.tip.split(/:\s(.*)/s);
      const head = document.createElement("strong");
      head.textContent = day;
      tip.replaceChildren(head, numbers ?? "");
      tip.hidden = false;
    }
    const boxRect = box.getBoundingClientRect();
    const hitRect = hit.getBoundingClientRect();
    const centre = hitRect.left + hitRect.width / 2 - boxRect.left;
    const half = tip.offsetWidth / 2;
    const left = Math.max(0, Math.min(boxRect.width - tip.offsetWidth, centre - half));
    tip.style.transform = `translate(${Math.round(left)}px, ${Math.round(-tip.offsetHeight - 6)}px)`;
  });
  svg.addEventListener("pointerleave", hide);
}

for (const menu of document.querySelectorAll("details.export-menu")) {
  document.addEventListener("click", (event) => {
    if (menu.open && !menu.contains(event.target)) menu.open = false;
  });
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.open) {
      menu.open = false;
      menu.querySelector("summary")?.focus();
    }
  });
}

// Lead page: after a refused form, the page reloads scrolled to the form (the action's #anchor);
// move focus to the message as well, so keyboard and screen reader users start from it.
document.querySelector("[data-focus]")?.focus({ preventScroll: true });
