// Batch page: select all, and the active time shared out over the approved items.
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
  var start = Date.now();
  var form = document.getElementById("batch-form");
  if (form) {
    form.addEventListener("submit", function () {
      document.getElementById("active-ms").value = String(Date.now() - start);
    });
  }
})();
