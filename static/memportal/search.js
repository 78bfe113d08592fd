// The search page (templates/uploads/search.html): when memories.ai's one-search-a-second slot of
// the team's account is taken, the page says how long to wait; this script searches again by
// itself once that time has passed (without JavaScript, the "Search again" button does).
(function () {
  "use strict";
  var wait = document.querySelector("[data-retry-after]");
  if (!wait) { return; }
  var seconds = parseInt(wait.getAttribute("data-retry-after"), 10);
  if (isNaN(seconds) || seconds < 1) { seconds = 1; }
  if (seconds > 120) { return; }
  window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
})();
