// redundantd console: live updates. The server renders the live part of the page and sends
// it as a server-sent event named after the view whenever it changes; this puts it in place.
// Without script the pages still work: reload to see changes.
(function () {
  "use strict";
  var url = document.body.dataset.live;
  var target = document.getElementById("live");
  var state = document.getElementById("live-state");
  if (!url || !target || !window.EventSource) {
    return;
  }
  var view = new URL(url, location.href).searchParams.get("view");
  var es = new EventSource(url);
  es.onopen = function () {
    if (state && !edited) state.className = "live-state on";
  };
  es.onerror = function () {
    if (state && !edited) state.className = "live-state off";
  };
  // A choice the operator has made in a form of the live part (the Backup mode) is not
  // replaced by an update: updates wait until the form is sent or the page reloaded.
  var edited = false;
  var markEdited = function () {
    edited = true;
    if (state) {
      state.className = "live-state paused";
      state.title = "live updates paused while you edit: save, or reload the page";
    }
  };
  target.addEventListener("change", markEdited);
  target.addEventListener("input", markEdited);
  es.addEventListener(view, function (e) {
    if (edited) {
      return;
    }
    target.innerHTML = e.data;
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  });
  es.addEventListener("logout", function () {
    es.close();
    location.href = "/console/login";
  });
})();
