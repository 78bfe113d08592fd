// The settings page: a button that picks the browser's own time zone in the list, shown only
// when the browser names a zone the list has ("Use my browser's zone (Europe/Paris)"). Without
// JavaScript the list alone does the same.
(function () {
  "use strict";
  var button = document.querySelector("[data-browser-zone]");
  var select = document.getElementById("id_time_zone");
  if (!button || !select || !window.Intl || !Intl.DateTimeFormat) { return; }
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  var known = zone && Array.prototype.some.call(select.options, function (option) { return option.value === zone; });
  if (!known) { return; }
  button.textContent = "Use my browser's zone (" + zone + ")";
  button.hidden = false;
  button.addEventListener("click", function () {
    select.value = zone;
    select.dispatchEvent(new Event("change", { bubbles: true }));
    var said = document.getElementById("browser-zone-said");
    if (said) { said.textContent = zone + " is chosen: save to keep it."; }
    select.focus();
  });
}());
