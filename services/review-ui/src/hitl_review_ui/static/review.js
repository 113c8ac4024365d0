// Review page: active-time measurement and keyboard shortcuts.
(function () {
  "use strict";
  // Active time counts only while the tab is visible and the reviewer was active recently,
  // so a tab left open over lunch does not look like careful reading.
  var IDLE_AFTER_MS = 30000;
  var TICK_MS = 250;
  var active = 0;
  var lastInput = Date.now();
  var last = Date.now();
  ["keydown", "mousemove", "mousedown", "scroll", "wheel", "touchstart"].forEach(function (ev) {
    window.addEventListener(ev, function () { lastInput = Date.now(); }, { passive: true });
  });
  setInterval(function () {
    var now = Date.now();
    if (document.visibilityState === "visible" && now - lastInput < IDLE_AFTER_MS) {
      active += now - last;
    }
    last = now;
  }, TICK_MS);

  var form = document.getElementById("decision-form");
  var activeField = document.getElementById("active-ms");
  if (form) {
    form.addEventListener("submit", function () { activeField.value = String(Math.round(active)); });
  }

  function radios() { return Array.prototype.slice.call(document.querySelectorAll("input[name=label]")); }
  function click(id) { var el = document.getElementById(id); if (el) { el.click(); } }
  function move(step) {
    var rs = radios(); if (!rs.length) { return; }
    var i = rs.findIndex(function (r) { return r.checked; });
    var next = rs[(i + step + rs.length) % rs.length];
    next.checked = true; next.focus();
  }

  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && e.target.type !== "radio")) { return; }
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var k = e.key;
    if (k >= "1" && k <= "9") {
      var r = radios()[Number(k) - 1]; if (r) { r.checked = true; r.focus(); e.preventDefault(); }
      return;
    }
    switch (k) {
      case "a": e.preventDefault(); click("approve"); break;
      case "e": e.preventDefault(); click("save-edit"); break;
      case "j": e.preventDefault(); move(1); break;
      case "k": e.preventDefault(); move(-1); break;
      case "r":
        e.preventDefault();
        var box = document.getElementById("reject-box");
        if (box) { box.open = true; document.getElementById("reason-code").focus(); }
        break;
      case "s": e.preventDefault(); click("skip"); break;
      case "?":
        e.preventDefault();
        var d = document.getElementById("keys-help");
        if (d.open) { d.close(); } else { d.showModal(); }
        break;
    }
  });
})();
