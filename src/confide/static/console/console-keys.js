// Keyboard: switch between open chats without the mouse, and the WAI-ARIA tabs pattern.
// Alt+J / Alt+K: next / previous open chat (focus lands in its composer); Alt+L: the list.
// Not Alt+digits or Alt+arrows: browsers use those for tab switching and back/forward.

/**
 * @param {object} o tabs (the tablist element), order() -> pane ids, activeId() -> id,
 *   select(id, focusTarget), hide(id), focusList()
 */
export function installKeyboard(o) {
  document.addEventListener("keydown", (e) => {
    if (!e.altKey || e.ctrlKey || e.metaKey) return;
    const order = o.order();
    if (e.code === "KeyJ" || e.code === "KeyK") {
      if (!order.length) return;
      e.preventDefault();
      const i = order.indexOf(o.activeId());
      const step = e.code === "KeyJ" ? 1 : order.length - 1;
      o.select(order[(i + step) % order.length], "composer");
    } else if (e.code === "KeyL") {
      e.preventDefault();
      o.focusList();
    }
  });

  // Arrows move between tabs, Home/End jump, Delete hides the focused tab's pane.
  o.tabs.addEventListener("keydown", (e) => {
    const tab = e.target.closest('[role="tab"]');
    const order = o.order();
    if (!tab || !order.length) return;
    const i = order.indexOf(tab.id.slice("tab-".length));
    let next = null;
    if (e.key === "ArrowRight") next = order[(i + 1) % order.length];
    else if (e.key === "ArrowLeft") next = order[(i - 1 + order.length) % order.length];
    else if (e.key === "Home") next = order[0];
    else if (e.key === "End") next = order[order.length - 1];
    else if (e.key === "Delete") {
      e.preventDefault();
      o.hide(order[i]);
      return;
    }
    if (next) {
      e.preventDefault();
      o.select(next, "tab");
    }
  });
}
