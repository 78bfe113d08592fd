// Keeps the states on "My videos" fresh without reloading: every few seconds it asks
// /videos/states/ about the listed videos that are not final yet and updates their badges.
(function () {
  "use strict";
  var table = document.getElementById("video-table");
  if (!table) { return; }
  var FINAL = { ready: true, cancelled: true, failed: true, rejected: true };
  var url = table.getAttribute("data-states-url");

  function pendingRows() {
    return Array.prototype.filter.call(table.querySelectorAll("tr[data-video-id]"), function (row) {
      var badge = row.querySelector("[data-status]");
      return badge && !FINAL[badge.className.replace(/.*status-(\w+).*/, "$1")];
    });
  }

  function sessionEnded() {
    var note = document.createElement("p");
    note.className = "warning";
    note.setAttribute("role", "status");
    note.textContent = "Your session ended: reload the page to sign in again. The states shown may be out of date.";
    document.querySelector("main").prepend(note);
  }

  function refresh() {
    var rows = pendingRows();
    if (rows.length === 0) { return; }
    var query = rows.map(function (row) { return "id=" + encodeURIComponent(row.getAttribute("data-video-id")); }).join("&");
    fetch(url + "?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        // The session ended (the poll is not activity): say so and stop. No reload: another tab
        // of this session may still be sending an upload, which ends it well.
        if (response.status === 401 || response.redirected) { sessionEnded(); throw "ended"; }
        return response.ok ? response.json() : { videos: {} };
      })
      .then(function (data) {
        rows.forEach(function (row) {
          var state = data.videos[row.getAttribute("data-video-id")];
          if (!state) { return; }
          var badge = row.querySelector("[data-status]");
          badge.className = "status status-" + state.status;
          badge.textContent = state.label;
          var next = row.querySelector("[data-next-attempt]");
          if (next) { next.textContent = state.next_attempt; }
        });
      })
      .then(function () { window.setTimeout(refresh, 3000); },
            function (error) { if (error !== "ended") { window.setTimeout(refresh, 3000); } });
  }
  window.setTimeout(refresh, 3000);
}());
