// Active review time, shared by the review page and the batch page: it counts only while the
// tab is visible and the reviewer was active recently (a key, the mouse, a scroll in the last
// 30 s), so a tab left open over lunch or behind another one does not look like careful
// reading. Every form with an `active_ms` field sends the total when it is submitted; the
// server never records more than the time the task was held.
(function () {
  "use strict";
  if (window.hitlActiveTime) { return; }
  var IDLE_AFTER_MS = 30000;
  var TICK_MS = 250;
  // A hidden tab's timers are slowed down or frozen by the browser: one late tick never
  // counts for more than this.
  var MAX_STEP_MS = 1000;
  var active = 0;
  var lastInput = Date.now();
  var last = Date.now();
  ["keydown", "mousemove", "mousedown", "scroll", "wheel", "touchstart"].forEach(function (ev) {
    window.addEventListener(ev, function () { lastInput = Date.now(); }, { passive: true });
  });
  function tick() {
    var now = Date.now();
    if (document.visibilityState === "visible" && now - lastInput < IDLE_AFTER_MS) {
      active += Math.min(now - last, MAX_STEP_MS);
    }
    last = now;
  }
  setInterval(tick, TICK_MS);
  // Hidden to visible: count from now, not from the last tick before the tab was hidden.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { last = Date.now(); } else { tick(); }
  });
  function ms() { tick(); return Math.round(active); }
  window.hitlActiveTime = { ms: ms };
  document.addEventListener("submit", function (e) {
    var field = e.target && e.target.querySelector ? e.target.querySelector("input[name=active_ms]") : null;
    if (field) { field.value = String(ms()); }
  }, true);
})();
