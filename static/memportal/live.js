// Keeps "My videos", "Team videos" and a video's page fresh without reloading: it POSTs the ids
// of the videos shown that are not final yet to /videos/states/ (in the body: any number of them)
// and updates each badge, its line (queue place, retry, why it waits), thumbnail and duration.
// It asks every 3 s while something changes and backs off to 30 s while nothing does, pauses
// while the tab is hidden, and stops once every video shown is final. Changes of state are
// announced to screen readers (aria-live). On a video's page, a change of state also brings the
// page's live part again (its actions, details and timeline), the player left as it is.
(function () {
  "use strict";
  var table = document.getElementById("video-table");
  var detail = document.getElementById("video-live");
  var root = table || detail;
  if (!root) { return; }
  var url = root.getAttribute("data-states-url");
  var announcer = document.getElementById("live-announcer");
  var FIRST = 3000, MOST = 30000, delay = FIRST, timer = null, stopped = false;

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function items() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-video-id][data-final=false]"));
  }

  function announce(text) {
    if (announcer) { announcer.textContent = text; }
  }

  function sessionEnded() {
    var note = document.createElement("p");
    note.className = "warning";
    note.setAttribute("role", "status");
    note.textContent = "Your session ended: reload the page to sign in again. The states shown may be out of date.";
    document.querySelector("main").prepend(note);
  }

  function reloadDetail() {
    // The page's live part as the server renders it now (same URL, same permissions).
    return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("video-live");
        var here = document.getElementById("video-live");
        if (fresh && here) { here.replaceWith(document.adoptNode(fresh)); detail = fresh; }
      });
  }

  function apply(item, state) {
    var badge = item.querySelector("[data-status]");
    var changed = badge && badge.getAttribute("data-status") !== state.status;
    if (badge) {
      badge.className = "status status-" + state.status;
      badge.setAttribute("data-status", state.status);
      badge.textContent = state.label;
    }
    var line = item.querySelector("[data-line]");
    if (line) { line.textContent = state.line; }
    var thumb = item.querySelector("[data-thumb]");
    if (thumb && state.thumbnail && !thumb.querySelector("img")) {
      var img = document.createElement("img");
      img.src = state.thumbnail; img.alt = ""; img.width = 96; img.height = 54;
      thumb.replaceChildren(img);
    }
    var duration = item.querySelector("[data-duration]");
    if (duration && state.duration) { duration.textContent = state.duration; }
    if (state.final) { item.setAttribute("data-final", "true"); }
    return changed;
  }

  function schedule(wait) {
    if (stopped || timer) { return; }
    if (document.hidden) { return; } // visibilitychange starts it again
    timer = window.setTimeout(refresh, wait);
  }

  function refresh() {
    timer = null;
    var pending = items();
    if (pending.length === 0) { return; } // all final: nothing more to ask
    var ids = pending.map(function (item) { return item.getAttribute("data-video-id"); });
    fetch(url, { method: "POST", credentials: "same-origin", body: JSON.stringify({ ids: ids }),
                 headers: { Accept: "application/json", "Content-Type": "application/json",
                            "X-CSRFToken": csrfToken() } })
      .then(function (response) {
        // The session ended (the poll is not activity): say so and stop. No reload: another tab
        // of this session may still be sending an upload, which ends it well.
        if (response.status === 401 || response.status === 403 || response.redirected) {
          stopped = true; sessionEnded(); return null;
        }
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (!data) { delay = Math.min(delay * 2, MOST); return; }
        var said = [], changedHere = false;
        pending.forEach(function (item) {
          var state = data.videos[item.getAttribute("data-video-id")];
          if (state && apply(item, state)) {
            var name = item.getAttribute("data-video-name") ||
              (item.querySelector(".name a") || { textContent: "A video" }).textContent;
            said.push("“" + name.trim() + "” is now " + state.label + ".");
            changedHere = changedHere || item === detail;
          }
        });
        if (said.length) { announce(said.join(" ")); }
        delay = said.length ? FIRST : Math.min(Math.round(delay * 1.5), MOST);
        return changedHere ? reloadDetail() : null;
      })
      .catch(function () { delay = Math.min(delay * 2, MOST); })
      .then(function () { schedule(delay); });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (timer) { window.clearTimeout(timer); timer = null; }
    } else {
      delay = FIRST;
      schedule(500); // back on the tab: ask soon
    }
  });
  schedule(FIRST);
}());
