// Notices on every page of a signed-in user: when a video of theirs becomes ready, fails or is
// refused while the page is open, a small notice says so with a link to it, and the tab's title
// shows how many are waiting ("(2) My videos · memportal"). It asks /notices/ (uploads/account.py)
// every 15 s, less often while nothing happens (up to 60 s), not at all while the tab is hidden,
// from the cursor the server rendered into the page: nothing older is announced. A notice stays
// (in this tab, across its pages) until it is dismissed or its video's page is visited. A 401
// (the session ended) stops the polling quietly: the page itself says so when it is used.
(function () {
  "use strict";
  var region = document.querySelector("[data-notices-url]");
  var live = document.getElementById("notices");
  if (!region || !live || !window.fetch) { return; }
  var FIRST = 15000, LONGEST = 60000, STORE = "memportal-notices", KEPT = 10;
  var url = region.getAttribute("data-notices-url");
  var cursor = region.getAttribute("data-cursor");
  var delay = FIRST, timer = null, stopped = false, busy = false;
  var baseTitle = document.title.replace(/^\(\d+\) /, "");
  var shown = {};  // "id@changed_at" of every notice this page has had
  var kept = [];   // the notices on display, oldest first, as the feed gave them

  function load() {
    try { return JSON.parse(window.sessionStorage.getItem(STORE)) || []; } catch (e) { return []; }
  }

  function save() {
    try { window.sessionStorage.setItem(STORE, JSON.stringify(kept.slice(-KEPT))); } catch (e) { /* private mode */ }
  }

  function updateTitle() {
    document.title = kept.length ? "(" + kept.length + ") " + baseTitle : baseTitle;
    region.classList.toggle("has-notices", kept.length > 0);
  }

  function element(notice) {
    var box = document.createElement("div");
    box.className = "notice notice-" + notice.status;
    box.setAttribute("data-notice-id", notice.id);
    var text = document.createElement("p");
    var link = document.createElement("a");
    link.href = notice.url;
    link.textContent = notice.name;
    text.appendChild(link);
    text.appendChild(document.createTextNode(" " + notice.text));
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "notice-dismiss";
    dismiss.textContent = "Dismiss";
    dismiss.setAttribute("aria-label", "Dismiss the notice about " + notice.name);
    dismiss.addEventListener("click", function () { remove(notice.id, true); });
    box.appendChild(text);
    box.appendChild(dismiss);
    return box;
  }

  function remove(id, byUser) {
    var focused = byUser && document.activeElement && document.activeElement.closest("[data-notice-id]");
    kept = kept.filter(function (notice) { return notice.id !== id; });
    region.querySelectorAll("[data-notice-id]").forEach(function (box) {
      if (box.getAttribute("data-notice-id") === id) { box.remove(); }
    });
    save();
    updateTitle();
    if (focused) {  // keep the keyboard's place: the next notice, else the page
      var next = region.querySelector(".notice-dismiss");
      (next || document.getElementById("main")).focus();
    }
  }

  function add(notice, container) {
    var key = notice.id + "@" + notice.changed_at;
    if (shown[key]) { return false; }
    shown[key] = true;
    remove(notice.id, false);  // a newer outcome of the same video replaces the older one
    kept.push(notice);
    container.appendChild(element(notice));
    return true;
  }

  function schedule(wait) {
    window.clearTimeout(timer);
    if (!stopped && !document.hidden) { timer = window.setTimeout(poll, wait); }
  }

  function poll() {
    if (stopped || busy) { return; }
    busy = true;
    fetch(url + "?after=" + encodeURIComponent(cursor), {
      credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store"
    }).then(function (response) {
      if (response.status === 401 || response.status === 403 || response.redirected) { stopped = true; throw "ended"; }
      if (!response.ok) { throw "not now"; }
      return response.json();
    }).then(function (data) {
      var news = 0;
      cursor = data.cursor || cursor;
      (data.notices || []).forEach(function (notice) { if (add(notice, live)) { news += 1; } });
      if (news) { save(); updateTitle(); }
      delay = news ? FIRST : Math.min(LONGEST, Math.round(delay * 1.5));
    }).catch(function () {
      delay = Math.min(LONGEST, Math.round(delay * 1.5));
    }).then(function () {
      busy = false;
      schedule(delay);
    });
  }

  // The notices kept from this tab's earlier pages, without announcing them again; the one of
  // the video this page shows is read.
  var earlier = document.createElement("div");
  region.insertBefore(earlier, live);
  load().forEach(function (notice) {
    if (notice && notice.id && notice.url !== window.location.pathname) { add(notice, earlier); }
  });
  save();
  updateTitle();

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      window.clearTimeout(timer);
    } else {
      delay = FIRST;
      poll();  // back on the tab: ask now, then at the first pace again
    }
  });
  schedule(delay);
}());
