// Forewarn console: keeps the alert queue live and asks before dismissing. No framework, no CDN.
(function () {
  "use strict";
  var rows = document.getElementById("alert-rows");
  var live = document.getElementById("live-indicator");
  if (rows && rows.dataset.refresh) {
    var busy = false;
    var refresh = function () {
      // Do not replace rows while someone is typing or clicking inside the table.
      if (busy || document.hidden || rows.contains(document.activeElement)) { return; }
      busy = true;
      fetch(rows.dataset.refresh, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
        .then(function (html) {
          rows.innerHTML = html;
          if (live) { live.classList.remove("stale"); live.title = new Date().toLocaleTimeString(); }
        })
        .catch(function () { if (live) { live.classList.add("stale"); } })
        .finally(function () { busy = false; });
    };
    setInterval(refresh, 10000);
  }
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest && ev.target.closest("button[value=dismiss],button[value=reject]");
    if (button && button.form && button.form.classList.contains("triage") && !button.dataset.confirmed) {
      if (!window.confirm(button.textContent.trim() + "?")) { ev.preventDefault(); }
    }
  });
})();
