// carebox: keyboard, live updates (SSE), presence and the composer. No build step; the pages work without it.
(function () {
  "use strict";
  var body = document.body;
  var csrf = body.dataset.csrf || "";
  var me = parseInt(body.dataset.userId || "0", 10);
  var typingField = function () { return /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName); };

  function post(url, data) {
    var form = new URLSearchParams(data || {});
    return fetch(url, {method: "POST", body: form, credentials: "same-origin",
                       headers: {"X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded"}});
  }
  function toast(text, href) {
    var box = document.getElementById("toasts");
    if (!box) { return; }
    var el = document.createElement(href ? "a" : "div");
    el.className = "toast";
    el.textContent = text;
    if (href) { el.href = href; }
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 8000);
  }

  // Rows open their conversation when clicked.
  document.addEventListener("click", function (ev) {
    var row = ev.target.closest && ev.target.closest("tr[data-href]");
    if (row && !ev.target.closest("a, button, input, select, textarea")) { window.location = row.dataset.href; }
    var help = ev.target.closest && ev.target.closest("[data-help]");
    if (help) { document.getElementById("help").showModal(); }
    if (ev.target.closest && ev.target.closest("[data-reload]")) { ev.preventDefault(); window.location.reload(); }
  });

  // Keyboard: j/k move, Enter opens, r reply, a assign to me, e resolve, / search, ? help, g i inbox.
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-href]"));
  var current = -1;
  function select(i) {
    if (!rows.length) { return; }
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (r, k) { r.classList.toggle("selected", k === current); });
    rows[current].scrollIntoView({block: "nearest"});
  }
  function selectedId() {
    var page = document.querySelector("[data-conversation]");
    if (page) { return page.dataset.conversation; }
    return current >= 0 ? rows[current].dataset.id : null;
  }
  function submitAction(path, field, value) {
    var id = selectedId();
    if (!id) { return; }
    var form = document.createElement("form");
    form.method = "post";
    form.action = "/conversations/" + id + "/" + path;
    [["csrf", csrf], [field, value], ["next", window.location.pathname + window.location.search]].forEach(function (p) {
      var input = document.createElement("input");
      input.type = "hidden"; input.name = p[0]; input.value = p[1];
      form.appendChild(input);
    });
    document.body.appendChild(form);
    form.submit();
  }
  var lastKey = "";
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && typingField()) { document.activeElement.blur(); return; }
    if (typingField() || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var reply = document.getElementById("reply-text");
    var key = ev.key;
    if (lastKey === "g" && key === "i") { window.location = "/"; return; }
    lastKey = key;
    if (key === "j") { select(current + 1); }
    else if (key === "k") { select(current - 1); }
    else if (key === "Enter" && current >= 0) { window.location = rows[current].dataset.href; }
    else if (key === "r") {
      if (reply) { ev.preventDefault(); reply.focus(); }
      else if (current >= 0) { window.location = rows[current].dataset.href + "#reply"; }
    }
    else if (key === "a") { submitAction("assign", "assignee", "me"); }
    else if (key === "e") { submitAction("status", "status", "resolved"); }
    else if (key === "/") { var s = document.getElementById("search"); if (s) { ev.preventDefault(); s.focus(); } else { window.location = "/?focus=search"; } }
    else if (key === "?") { var h = document.getElementById("help"); if (h) { h.showModal(); } }
  });
  if (rows.length && document.querySelector(".inbox")) { select(0); }
  if (window.location.hash === "#reply" && document.getElementById("reply-text")) { document.getElementById("reply-text").focus(); }
  if (/focus=search/.test(window.location.search) && document.getElementById("search")) { document.getElementById("search").focus(); }

  // The composer: canned responses, characters left on the network.
  var composer = document.querySelector("form.composer");
  if (composer) {
    var text = composer.querySelector("textarea");
    var counter = composer.querySelector("[data-counter]");
    var limit = parseInt(composer.dataset.limit, 10);
    var count = function () {
      var left = limit - Array.from(text.value).length;
      counter.textContent = left;
      counter.classList.toggle("over", left < 0);
    };
    text.addEventListener("input", count);
    count();
    var canned = composer.querySelector("[data-canned]");
    if (canned) {
      canned.addEventListener("change", function () {
        var opt = canned.options[canned.selectedIndex];
        if (opt.dataset.text) { text.value = text.value ? text.value + "\n" + opt.dataset.text : opt.dataset.text; count(); text.focus(); }
        canned.selectedIndex = 0;
      });
    }
  }

  // Presence: viewing while the page is open, typing while the reply changes.
  var page = document.querySelector("[data-conversation]");
  var convId = page ? parseInt(page.dataset.conversation, 10) : null;
  function showPresence(people) {
    var box = document.getElementById("presence");
    if (!box) { return; }
    box.textContent = "";
    people.filter(function (p) { return p.user_id !== me; }).forEach(function (p) {
      var span = document.createElement("span");
      span.className = "who-" + p.state;
      span.textContent = p.username + " " + (p.state === "typing" ? box.dataset.typing || "is typing…" : box.dataset.viewing || "is viewing");
      box.appendChild(span);
    });
  }
  if (page) {
    var url = "/conversations/" + convId + "/presence";
    var beat = function (state) { return post(url, {state: state}).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d) { showPresence(d.people); } }).catch(function () {}); };
    beat("viewing");
    setInterval(function () { beat("viewing"); }, 20000);
    var typingSent = 0;
    var reply = document.getElementById("reply-text");
    if (reply) {
      reply.addEventListener("input", function () {
        if (Date.now() - typingSent > 4000) { typingSent = Date.now(); beat("typing"); }
      });
    }
    window.addEventListener("pagehide", function () {
      navigator.sendBeacon && navigator.sendBeacon(url, new Blob([new URLSearchParams({state: "left", csrf: csrf}).toString()],
                                                                   {type: "application/x-www-form-urlencoded"}));
    });
  }

  // Live updates over Server-Sent Events.
  if (body.dataset.live && window.EventSource) {
    var source = new EventSource(body.dataset.live);
    var banner = document.getElementById("live-banner");
    var changed = function (data) {
      if (banner) { banner.hidden = false; banner.dataset.count = (parseInt(banner.dataset.count || "0", 10) + 1); }
      if (page && data.conversation_id === convId && data.by !== me) {
        var note = document.getElementById("page-changed");
        if (note) { note.hidden = false; }
      }
    };
    ["mention", "assign", "status", "reply", "note", "tags"].forEach(function (kind) {
      source.addEventListener(kind, function (ev) {
        var data = JSON.parse(ev.data);
        changed(data);
        if (kind === "mention" && data.inbound && data.assignee_id === me) {
          toast((body.dataset.newMessage || "New message in conversation") + " #" + data.conversation_id,
                "/conversations/" + data.conversation_id);
        }
        if (kind === "assign" && data.assignee_id === me && data.by !== me && data.conversation_id) {
          toast((body.dataset.assigned || "Assigned to you:") + " #" + data.conversation_id, "/conversations/" + data.conversation_id);
        }
      });
    });
    source.addEventListener("sla", function (ev) {
      var data = JSON.parse(ev.data);
      changed(data);
      if (data.event === "warn" || data.event === "breach") {
        var listed = document.querySelector('tr[data-href="/conversations/' + data.conversation_id + '"]');
        if (listed || (page && data.conversation_id === convId)) {
          toast((data.event === "breach" ? (body.dataset.slaBreach || "SLA breached:") : (body.dataset.slaWarn || "SLA due soon:"))
                + " #" + data.conversation_id, "/conversations/" + data.conversation_id);
        }
      }
    });
    source.addEventListener("presence", function (ev) {
      var data = JSON.parse(ev.data);
      if (page && data.conversation_id === convId) { showPresence(data.people); }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }
})();
