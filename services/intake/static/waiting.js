// The waiting page: polls the session's status every 2 s (until the websocket gateway exists),
// moves the progress bar and the stage list, and goes to the results page when they are ready.
(function () {
  "use strict";
  var root = document.getElementById("waiting");
  if (!root) return;
  var POLL_MS = 2000;
  var items = Array.prototype.slice.call(document.querySelectorAll("#stage-list li"));
  var order = items.map(function (li) { return li.dataset.state; });
  var bar = document.querySelector("#progress > div");
  var progress = document.getElementById("progress");
  var text = document.getElementById("progress-text");

  function render(status) {
    var state = status.state;
    if (state === "completed") { window.location.assign(root.dataset.resultsUrl); return false; }
    if (state === "onboarding") { window.location.assign(root.dataset.onboardingUrl); return false; }
    var index = order.indexOf(state);
    items.forEach(function (li, i) {
      li.classList.toggle("done", index >= 0 && i < index);
      li.classList.toggle("current", i === index);
    });
    // Each finished stage fills an equal share; the current stage's own done/total fills part of its share.
    var share = 100 / Math.max(1, order.length - 1);
    var within = status.progress && status.progress.total ? status.progress.done / status.progress.total : 0;
    var pct = index < 0 ? 0 : Math.min(100, Math.round(share * index + share * within));
    bar.style.width = pct + "%";
    progress.setAttribute("aria-valuenow", String(pct));
    var detail = status.progress && status.progress.total ? " · " + status.progress.done + " of " + status.progress.total : "";
    text.textContent = status.stage + detail;
    // A failed session may be re-queued by support: keep polling, and say what is happening.
    var title = document.getElementById("stage-title");
    var line = document.getElementById("stage-text");
    if (state === "failed") {
      title.textContent = "Something went wrong";
      line.textContent = "We couldn't finish your headshots. Our team has been told and will get back to you.";
    } else if (root.dataset.state === "failed") {
      title.textContent = "Thanks, your photos are in!";
      line.textContent = "We'll e-mail you when your headshots are ready. You can close this page and come back any time.";
    }
    root.dataset.state = state;
    return true;
  }

  function poll() {
    fetch(root.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (status) {
        var again = status ? render(status) : true;
        if (again) setTimeout(poll, POLL_MS);
      }, function () { setTimeout(poll, POLL_MS * 2); });
  }

  render({ state: root.dataset.state, stage: text.textContent, progress: null });
  poll();
})();
