// Live parts: while <body data-live="1">, re-fetch this page every data-refresh seconds and swap
// every element marked data-live-part (by id). Stops as soon as the fetched page says data-live="0".
(function () {
  "use strict";
  function refresh() {
    fetch(window.location.href, { headers: { "X-Requested-With": "monitor-refresh" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-part]").forEach(function (part) {
          var replacement = part.id ? fresh.getElementById(part.id) : null;
          if (replacement) { part.innerHTML = replacement.innerHTML; }
        });
        document.body.dataset.live = fresh.body.dataset.live;
        document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
        schedule();
      })
      .catch(function () { schedule(); });
  }
  function schedule() {
    if (document.body.dataset.live !== "1") { return; }
    var seconds = Number(document.body.dataset.refresh) || 5;
    window.setTimeout(refresh, seconds * 1000);
  }
  document.addEventListener("DOMContentLoaded", schedule);
})();
