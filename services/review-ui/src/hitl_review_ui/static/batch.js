// Batch page: select all (Shift+A). Active time: active-time.js.
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  function picks() { return Array.prototype.slice.call(document.querySelectorAll("input.pick")); }
  function setAll(on) { picks().forEach(function (p) { p.checked = on; }); if (all) { all.checked = on; } }
  if (all) {
    all.addEventListener("change", function () { setAll(all.checked); });
  }
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && e.target.type !== "checkbox")) { return; }
    if (e.key === "A" && e.shiftKey && !e.ctrlKey && !e.metaKey) { e.preventDefault(); setAll(true); }
  });
  // The active time on the page is measured by active-time.js (as on the review page) and
  // sent with the form; the server shares it out over the approved items.
})();
