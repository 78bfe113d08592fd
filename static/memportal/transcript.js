// The video page's transcript and summary (templates/uploads/_transcript.html): a time's button
// seeks the player there and plays; the search box (shown only with JavaScript) keeps the lines,
// said and seen, holding what is typed. Listeners sit on the document, so they keep working after live.js brings
// the page's live part again. Without JavaScript every line simply shows, times as plain buttons.
(function () {
  "use strict";

  function words(text) {
    return (text || "").toLowerCase().replace(/\s+/g, " ").trim();
  }

  function filter(input) {
    var count = document.getElementById("transcript-count");
    var wanted = words(input.value);
    // both lists: what is said and what is seen
    var lines = document.querySelectorAll(".understanding .transcript-lines li[data-line-text]");
    var shown = 0;
    Array.prototype.forEach.call(lines, function (line) {
      var keep = !wanted || words(line.getAttribute("data-line-text")).indexOf(wanted) !== -1;
      line.hidden = !keep;
      if (keep) { shown += 1; }
    });
    if (count) {
      count.textContent = wanted ? shown + " of " + lines.length + " lines hold “" + input.value.trim() + "”." : "";
    }
  }

  function reveal() {
    var search = document.querySelector("[data-transcript-search]");
    if (search) { search.hidden = false; }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-seek]") : null;
    if (!button) { return; }
    var player = document.getElementById("player");
    var start = parseFloat(button.getAttribute("data-seek"));
    if (!player || isNaN(start)) { return; }
    player.currentTime = start;
    var playing = player.play();
    if (playing && playing.catch) { playing.catch(function () { /* a browser that will not play unasked: it is at the time */ }); }
  });

  document.addEventListener("input", function (event) {
    if (event.target && event.target.id === "transcript-filter") { filter(event.target); }
  });

  // live.js may bring the section again (a fresh copy, its search hidden): show it again.
  new MutationObserver(reveal).observe(document.body, { childList: true, subtree: true });
  reveal();
})();
