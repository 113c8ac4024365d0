// Review page: keyboard shortcuts (active time: active-time.js, shared with the batch page).
(function () {
  "use strict";
  // Only the answers the filter leaves visible take part in 1-9, j and k.
  function radios() {
    return Array.prototype.slice.call(document.querySelectorAll("input[name=label]"))
      .filter(function (r) { return !r.closest("label").hidden; });
  }
  function renumber() {
    radios().forEach(function (r, i) {
      r.closest("label").querySelector("kbd").textContent = i < 9 ? String(i + 1) : "";
    });
  }
  var filter = document.getElementById("label-filter");
  if (filter) {
    filter.hidden = false;
    filter.addEventListener("input", function () {
      var q = filter.value.trim().toLowerCase();
      document.querySelectorAll(".label-choice").forEach(function (el) {
        el.hidden = q !== "" && el.textContent.toLowerCase().indexOf(q) === -1;
      });
      renumber();
    });
    filter.addEventListener("keydown", function (e) {
      // Enter must never submit the form from here (the first button approves).
      if (e.key === "Enter") {
        e.preventDefault();
        var first = radios()[0];
        if (first) { first.checked = true; first.focus(); }
      } else if (e.key === "Escape") {
        e.preventDefault();
        filter.value = ""; filter.dispatchEvent(new Event("input")); filter.blur();
      }
    });
  }
  function click(id) { var el = document.getElementById(id); if (el) { el.click(); } }
  function move(step) {
    var rs = radios(); if (!rs.length) { return; }
    if (rs[0].type === "checkbox") {  // multi-label: move the focus; Space ticks
      var at = rs.indexOf(document.activeElement);
      rs[(at + step + rs.length) % rs.length].focus();
      return;
    }
    var i = rs.findIndex(function (r) { return r.checked; });
    var next = rs[(i + step + rs.length) % rs.length];
    next.checked = true; next.focus();
  }

  // In the escalation reason, Ctrl+Enter (or Cmd+Enter) sends it.
  var escReason = document.getElementById("escalation-reason");
  if (escReason) {
    escReason.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); click("escalate"); }
      else if (e.key === "Escape") { document.getElementById("escalate-box").open = false; escReason.blur(); }
    });
  }

  // Score, extraction and draft answers are typed: Enter in a one-line box and Ctrl+Enter
  // anywhere save the reviewer's answer (never the AI's, which a bare form submit would do),
  // Esc leaves the box so the single-key shortcuts work again.
  function answerInputs() {
    return Array.prototype.slice.call(document.querySelectorAll(".answer-input"));
  }
  answerInputs().forEach(function (el) {
    el.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey || el.tagName === "INPUT")) {
        e.preventDefault(); click("save-edit");
      } else if (e.key === "Escape") {
        e.preventDefault(); el.blur();
      }
    });
  });
  function focusInput(step) {
    var inputs = answerInputs(); if (!inputs.length) { return false; }
    var i = inputs.indexOf(document.activeElement);
    var next = i === -1 ? (step > 0 ? inputs[0] : inputs[inputs.length - 1])
                        : inputs[(i + step + inputs.length) % inputs.length];
    next.focus(); if (next.select && next.tagName === "INPUT") { next.select(); }
    return true;
  }
  function startEditing() {
    var first = document.querySelector(".field-row.doubtful .answer-input") || answerInputs()[0];
    if (first) { first.focus(); if (first.tagName === "INPUT") { first.select(); } }
  }
  var typed = answerInputs().length > 0;

  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && e.target.type !== "radio" && e.target.type !== "checkbox")) { return; }
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var k = e.key;
    if (k >= "1" && k <= "9") {
      var r = radios()[Number(k) - 1];
      if (r) { r.checked = r.type === "checkbox" ? !r.checked : true; r.focus(); e.preventDefault(); }
      return;
    }
    switch (k) {
      case "a": e.preventDefault(); click("approve"); break;
      case "e": e.preventDefault(); if (typed) { startEditing(); } else { click("save-edit"); } break;
      case "j": e.preventDefault(); if (!focusInput(1)) { move(1); } break;
      case "k": e.preventDefault(); if (!focusInput(-1)) { move(-1); } break;
      case "r":
        e.preventDefault();
        var box = document.getElementById("reject-box");
        if (box) { box.open = true; document.getElementById("reason-code").focus(); }
        break;
      case "s": e.preventDefault(); click("skip"); break;
      case "x":
        var esc = document.getElementById("escalate-box");
        if (esc) { e.preventDefault(); esc.open = true; document.getElementById("escalation-reason").focus(); }
        break;
      case "/":
        if (filter) { e.preventDefault(); filter.focus(); filter.select(); }
        break;
      case "?":
        e.preventDefault();
        var d = document.getElementById("keys-help");
        if (d.open) { d.close(); } else { d.showModal(); }
        break;
    }
  });
})();
