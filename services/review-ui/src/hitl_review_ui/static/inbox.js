// Inbox: `n` starts reviewing the most urgent item, like the button.
(function () {
  "use strict";
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") { return; }
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (e.key === "n") {
      var start = document.getElementById("start-all");
      if (start) { e.preventDefault(); start.click(); }
    }
  });
})();
