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
    if (state) state.className = "live-state on";
  };
  es.onerror = function () {
    if (state) state.className = "live-state off";
  };
  es.addEventListener(view, function (e) {
    target.innerHTML = e.data;
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  });
  es.addEventListener("logout", function () {
    es.close();
    location.href = "/console/login";
  });
})();
