// Small progressive enhancements; the inbox works without them.
(function () {
  "use strict";
  // Rows open their conversation when clicked.
  document.addEventListener("click", function (ev) {
    var row = ev.target.closest && ev.target.closest("tr[data-href]");
    if (row && !ev.target.closest("a, button, input, select, textarea")) { window.location = row.dataset.href; }
  });
  // Keyboard: j/k move, Enter opens.
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-href]"));
  var current = -1;
  function select(i) {
    if (!rows.length) { return; }
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (r, k) { r.classList.toggle("selected", k === current); });
    rows[current].scrollIntoView({block: "nearest"});
  }
  document.addEventListener("keydown", function (ev) {
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName) || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (ev.key === "j") { select(current + 1); }
    else if (ev.key === "k") { select(current - 1); }
    else if (ev.key === "Enter" && current >= 0) { window.location = rows[current].dataset.href; }
  });
  // The inbox refreshes itself while nobody is typing or navigating with the keyboard.
  var live = document.querySelector("[data-live-refresh]");
  if (live) {
    var seconds = parseInt(live.dataset.liveRefresh, 10) || 10;
    setInterval(function () {
      if (current < 0 && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)) { window.location.reload(); }
    }, seconds * 1000);
  }
})();
