// "My videos" and "Team videos": a box that selects every video of the page, and the bar above
// the table saying how many are selected. Without JavaScript each row's box still works.
(function () {
  "use strict";
  var form = document.getElementById("bulk-form");
  var head = document.querySelector("#video-table th.pick");
  if (!form || !head) { return; }
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[name=video][form=bulk-form]"));
  if (!boxes.length) { return; }
  var count = document.getElementById("selected-count");
  var all = document.createElement("input");
  all.type = "checkbox";
  all.id = "pick-all";
  all.setAttribute("aria-label", "Select every video on this page");
  head.replaceChildren(all);

  function update() {
    var chosen = boxes.filter(function (box) { return box.checked; }).length;
    all.checked = chosen === boxes.length;
    all.indeterminate = chosen > 0 && chosen < boxes.length;
    count.textContent = chosen ? chosen + " selected:" : "Select videos to act on several at once:";
  }
  all.addEventListener("change", function () {
    boxes.forEach(function (box) { box.checked = all.checked; });
    update();
  });
  boxes.forEach(function (box) { box.addEventListener("change", update); });
  form.addEventListener("submit", function (event) {
    if (!boxes.some(function (box) { return box.checked; })) {
      event.preventDefault();
      count.textContent = "Select at least one video first:";
    }
  });
  update();
}());
