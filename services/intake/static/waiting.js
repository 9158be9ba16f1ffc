// The waiting page, live: listens to the websocket gateway (Socket.IO namespace /progress) for
// every step of this session, and falls back to polling the status API when the Socket.IO client
// is missing or the gateway cannot be reached. Each event carries its outbox id; on reconnection
// the page sends the last id it saw and the gateway replays what it missed, in order.
(function () {
  "use strict";
  var root = document.getElementById("waiting");
  if (!root) return;
  var d = root.dataset;
  // Event names (routing keys) come from the contracts (libs/contracts), rendered by the server into
  // data-events as {SessionCompleted: <its routing key>, ...}: none is written here.
  var EVENT = JSON.parse(d.events || "{}");
  var POLL_MS = 2000;
  var QUEUE_REFRESH_MS = 15000;
  var ETA_TICK_MS = 20000;

  var NEXT = {
    submitted: "We're checking your submission. This usually takes a moment.",
    in_review: "Your organization reviews every submission. You'll hear from us as soon as your admin has looked at it.",
    queued: "Your session is in line. Once it starts, we prepare your photos, learn your look, then create each headshot.",
    preprocessing: "Next we learn your look from your photos, then create each headshot.",
    training: "Next we create your headshots, one style at a time. They'll appear below as they're finished.",
    generating: "When the last headshot is done you'll be taken to your results, and we'll e-mail you.",
    failed: "Our team has been told. You don't need to do anything; we'll e-mail you.",
    rejected: "Taking you back to your photos so you can make the changes…",
    completed: "Taking you to your results…"
  };
  // Which measured stretches (see the gateway's eta.py) are still ahead in each state.
  var AHEAD = {
    submitted: ["waiting", "training", "generating"],
    queued: ["waiting", "training", "generating"],
    preprocessing: ["waiting", "training", "generating"],
    training: ["training", "generating"],
    generating: ["generating"]
  };

  var items = Array.prototype.slice.call(document.querySelectorAll("#stage-list li"));
  var order = items.map(function (li) { return li.dataset.state; });
  var labels = {};
  items.forEach(function (li) { labels[li.dataset.state] = li.textContent.trim(); });
  var $ = function (id) { return document.getElementById(id); };
  var bar = document.querySelector("#progress > div");
  var thumbs = $("thumbs");

  var model = {
    state: d.state,
    done: parseInt(d.done, 10) || 0,
    total: parseInt(d.total, 10) || 0,
    lastId: null,
    floor: 0,  // events up to the last state's id are already in it
    seen: {},
    durations: null,
    etaEnd: null,
    queue: null,
    reason: document.getElementById("problem-reason").textContent.trim() || null
  };
  var shown = {};
  Array.prototype.forEach.call(thumbs.querySelectorAll("li"), function (li) { shown[li.dataset.headshotId] = true; });

  // --- drawing --------------------------------------------------------------------------------
  function render() {
    var state = model.state;
    var index = order.indexOf(state);
    items.forEach(function (li, i) {
      li.classList.toggle("done", index >= 0 && i < index);
      li.classList.toggle("current", i === index);
      if (i === index) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
    });
    var share = 100 / Math.max(1, order.length - 1);
    var within = model.total ? Math.min(1, model.done / model.total) : 0;
    var pct = index < 0 ? 0 : Math.min(100, Math.round(share * index + share * within));
    if (state === "completed") pct = 100;
    bar.style.width = pct + "%";
    $("progress").setAttribute("aria-valuenow", String(pct));
    var stage = labels[state] || state;
    $("progress-text").textContent = stage + (model.total ? " · " + model.done + " of " + model.total : "");
    $("next-text").textContent = NEXT[state] || "";
    var queue = $("queue");
    queue.hidden = !(state === "queued" && model.queue);
    if (!queue.hidden) queue.textContent = model.queue === 1 ? "You're next in line." : "Your place in line: " + model.queue;
    renderProblem();
    renderEta();
  }

  function renderProblem() {
    var box = $("problem");
    var state = model.state;
    if (state === "failed") {
      $("stage-title").textContent = "Something went wrong";
      $("stage-text").textContent = "We couldn't finish your headshots.";
      $("problem-title").textContent = "What happened";
      $("problem-reason").textContent = model.reason || "A step of the work failed.";
      $("problem-next").hidden = false;
      box.hidden = false;
    } else if (state === "rejected") {
      $("stage-title").textContent = "Your admin asked for changes";
      $("stage-text").textContent = "Please update your photos or choices and submit again.";
      $("problem-title").textContent = "The reason given";
      $("problem-reason").textContent = model.reason || "";
      $("problem-next").hidden = true;
      box.hidden = false;
    } else {
      box.hidden = true;
      if (d.state === "failed" || d.state === "rejected") {
        $("stage-title").textContent = "Thanks, your photos are in!";
        $("stage-text").textContent = "We'll e-mail you when your headshots are ready. You can close this page and come back any time.";
      }
    }
    d.state = state;
  }

  function words(seconds) {
    if (seconds <= 90) return "about a minute";
    var minutes = seconds / 60;
    if (minutes < 10) return "about " + Math.round(minutes) + " minutes";
    if (minutes < 55) return "about " + Math.round(minutes / 5) * 5 + " minutes";
    var hours = Math.round(minutes / 60);
    return hours === 1 ? "about an hour" : "about " + hours + " hours";
  }

  function renderEta() {
    var eta = $("eta");
    if (model.etaEnd === null || !AHEAD[model.state]) { eta.hidden = true; return; }
    var left = (model.etaEnd - Date.now()) / 1000;
    eta.textContent = left > 0 ? "Ready in " + words(left) + "." : "Taking a little longer than usual; almost there.";
    eta.hidden = false;
  }

  function estimate() {
    var m = model.durations;
    var ahead = AHEAD[model.state];
    if (!m || !ahead) return null;
    var total = 0;
    for (var i = 0; i < ahead.length; i++) {
      var part = m[ahead[i]];
      if (typeof part !== "number") return null;
      if (i === 0 && ahead[i] === "generating" && model.total) part *= 1 - Math.min(1, model.done / model.total);
      total += part;
    }
    return total;
  }

  function announce(text) { $("announce").textContent = text; }

  function addThumb(id, style) {
    if (!id || shown[id]) return;
    shown[id] = true;
    var li = document.createElement("li");
    li.dataset.headshotId = id;
    var img = document.createElement("img");
    img.src = d.thumbUrl.replace("HEADSHOT", encodeURIComponent(id));
    img.alt = "Headshot, " + (style || "").replace(":", " · ");
    img.width = 96;
    img.height = 96;
    li.appendChild(img);
    thumbs.appendChild(li);
    $("thumbs-section").hidden = false;
  }

  // --- what happened --------------------------------------------------------------------------
  function moveTo(state) {
    if (state === model.state) return;
    model.state = state;
    announce("Now: " + (labels[state] || state));
  }

  // Set once the page has started to leave for the results (or onboarding): nothing may start a
  // second navigation, which would abort the first one (a status poll started by the live
  // connection's next retry, say, while the results page is still loading).
  var leaving = false;

  function finish(state) {
    if (leaving) return true;
    if (state === "completed") {
      leaving = true;
      announce("Your headshots are ready. Opening your results.");
      window.location.assign(d.resultsUrl);
      return true;
    }
    if (state === "onboarding") {
      leaving = true;
      window.location.assign(d.onboardingUrl);
      return true;
    }
    return false;
  }

  function applyState(s) {
    if (!s) return;
    if (typeof s.id === "number") { model.lastId = Math.max(model.lastId || 0, s.id); model.floor = s.id; }
    moveTo(s.state);
    model.done = s.progress ? s.progress.done : 0;
    model.total = s.progress ? s.progress.total : 0;
    model.queue = s.queue_position;
    model.reason = s.reason;
    model.durations = s.durations && Object.keys(s.durations).length ? s.durations : null;
    model.etaEnd = typeof s.eta_seconds === "number" ? Date.now() + s.eta_seconds * 1000 : null;
    (s.headshots || []).forEach(function (h) { addThumb(h.id, h.style); });
    render();
    if (finish(s.state)) return;
    if (s.state === "rejected") startPolling();
  }

  function applyEvent(e) {
    if (!e || typeof e.id !== "number" || typeof e.type !== "string") return;
    if (model.seen[e.id] || e.id <= model.floor) return;  // already shown
    model.seen[e.id] = true;
    model.lastId = Math.max(model.lastId || 0, e.id);
    var data = e.data || {};
    var before = model.state;
    switch (e.type) {
      case EVENT.SessionSubmitted: moveTo("submitted"); break;
      case EVENT.SessionApproved: moveTo("queued"); model.done = model.total = 0; break;
      case EVENT.SessionProgress:
        moveTo(data.stage); model.done = data.done; model.total = data.total; break;
      case EVENT.PhotosProcessed: moveTo("training"); model.done = model.total = 0; break;
      case EVENT.ModelTrained: moveTo("generating"); model.done = 0; model.total = 0; break;
      case EVENT.HeadshotGenerated:
        moveTo("generating"); model.done = data.done; model.total = data.total;
        addThumb(data.headshot_id, data.style);
        break;
      case EVENT.SessionCompleted: moveTo("completed"); render(); finish("completed"); return;
      case EVENT.SessionRejected:
        moveTo("rejected"); model.reason = data.reason;
        startPolling();  // the session goes back to onboarding in a moment: follow it there
        break;
      case EVENT.SessionFailed: moveTo("failed"); model.reason = data.reason; break;
      default: return;
    }
    if (model.state !== before || e.type === EVENT.HeadshotGenerated) {
      var left = estimate();
      if (left !== null) model.etaEnd = Date.now() + left * 1000;
      else if (!AHEAD[model.state]) model.etaEnd = null;
    }
    render();
  }

  function applyStatus(status) {
    // The status API (polling): state and progress, and the headshots finished so far.
    moveTo(status.state);
    if (status.progress) { model.done = status.progress.done; model.total = status.progress.total; }
    (status.headshots || []).forEach(function (h) { addThumb(h.id, h.style); });
    if (finish(status.state)) return false;
    render();
    return true;
  }

  // --- polling (no websocket) -----------------------------------------------------------------
  var pollTimer = null;
  function startPolling() {
    if (pollTimer === null && !leaving) pollTimer = setTimeout(poll, 0);
  }
  function stopPolling() {
    if (pollTimer !== null) { clearTimeout(pollTimer); pollTimer = null; }
  }
  function poll() {
    fetch(d.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (res) {
        if (res.status === 401) { $("connection").textContent = "You've been signed out. Open your invite link again to see your progress."; return null; }
        return res.ok ? res.json() : {};
      })
      .then(function (status) {
        if (status === null) { pollTimer = null; return; }
        var again = status.state ? applyStatus(status) : true;
        pollTimer = again ? setTimeout(poll, POLL_MS) : null;
      }, function () { pollTimer = setTimeout(poll, POLL_MS * 2); });
  }

  // --- live (websocket gateway) ---------------------------------------------------------------
  function connectLive() {
    if (typeof window.io !== "function") { root.dataset.transport = "polling"; startPolling(); return; }
    var socket = window.io("/progress", {
      path: d.gatewayPath.replace(/\/$/, "") + "/socket.io",
      // A function: read again at every reconnection (the token may be replaced by then).
      auth: function (cb) { cb({ session_id: d.sessionId, token: d.token }); },
      reconnectionDelayMax: 10000
    });
    socket.on("connect", function () {
      root.dataset.transport = "live";
      $("connection").textContent = "";
      if (model.state !== "rejected") stopPolling();
      socket.emit("follow", model.lastId === null ? {} : { last_id: model.lastId });
    });
    socket.on("state", applyState);
    socket.on("event", applyEvent);
    socket.on("connect_error", function (err) {
      // Poll while the live connection is not there (Socket.IO keeps retrying; "connect" stops it).
      if (err && err.message === "unauthorized") {
        socket.close();  // it will not get better by retrying; the status API still may
        root.dataset.transport = "polling";
      }
      startPolling();
    });
    socket.on("disconnect", function () {
      $("connection").textContent = "Reconnecting…";
      startPolling();
    });
    // While queued, the place in line changes with other people's sessions: ask now and then.
    setInterval(function () { if (socket.connected && model.state === "queued") socket.emit("refresh"); }, QUEUE_REFRESH_MS);
  }

  setInterval(renderEta, ETA_TICK_MS);
  render();
  if (!finish(model.state)) connectLive();
})();
