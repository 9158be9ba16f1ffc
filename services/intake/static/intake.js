// The onboarding page, enhanced: one upload request per photo with an instant verdict, answers
// saved as they are given (through /api/v1), a live summary. Without this script the page still
// works with plain form posts.
(function () {
  "use strict";
  var root = document.getElementById("onboarding");
  if (!root) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var photosUrl = root.dataset.photosUrl;
  var maxPhotos = parseInt(root.dataset.maxPhotos, 10);
  var maxStyles = parseInt(root.dataset.maxStyles, 10);
  var form = document.getElementById("submit-form");
  var grid = document.getElementById("photo-grid");
  var input = document.getElementById("photo-input");
  var dropzone = document.getElementById("dropzone");

  function api(method, url, body) {
    var opts = { method: method, headers: { "X-CSRF-Token": csrf, Accept: "application/json" }, credentials: "same-origin" };
    if (body instanceof FormData) opts.body = body;
    else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
    return fetch(url, opts).then(function (res) {
      if (res.status === 204) return { ok: true, status: 204, data: null };
      return res.json().then(
        function (data) { return { ok: res.ok, status: res.status, data: data }; },
        function () { return { ok: res.ok, status: res.status, data: null }; }
      );
    }, function () {
      return { ok: false, status: 0, data: { error: { message: "We couldn't reach the server. Check your connection and try again." } } };
    });
  }

  function errorMessage(result, fallback) {
    var err = result.data && result.data.error;
    if (result.status === 413 && (!err || err.code === "too_large")) return "This file is too large.";
    return (err && err.message) || fallback || "Something went wrong. Please try again.";
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- photos -------------------------------------------------------------------------------------
  var queue = [];
  var busy = 0;
  var CONCURRENCY = 2;

  function acceptedCount() { return grid.querySelectorAll(".photo.ok").length; }

  function refreshPhotos() {
    var n = acceptedCount();
    var checking = grid.querySelectorAll(".photo.checking").length;
    var text = n ? n + (n === 1 ? " photo accepted" : " photos accepted") : "No photos yet";
    if (checking) text += " · checking " + checking + "…";
    if (n >= maxPhotos) text += " · that's the maximum";
    document.getElementById("photo-count").textContent = text;
    var strip = document.querySelector('[data-summary="photos"]');
    strip.textContent = "";
    var imgs = grid.querySelectorAll(".photo.ok img");
    if (!imgs.length) { strip.appendChild(el("span", "missing", "No photos yet")); }
    else {
      var wrap = el("span", "thumb-strip");
      imgs.forEach(function (img) { var t = el("img"); t.src = img.src; t.alt = ""; wrap.appendChild(t); });
      strip.appendChild(wrap);
    }
    if (n) clearError("photos");
    markSteps();
  }

  function removeButton(card, photoId) {
    var btn = el("button", "remove", "×");
    btn.type = "button";
    btn.title = "Remove this photo";
    btn.setAttribute("aria-label", "Remove this photo");
    btn.addEventListener("click", function () {
      if (!photoId) { card.remove(); refreshPhotos(); return; }
      btn.disabled = true;
      api("DELETE", photosUrl + "/" + encodeURIComponent(photoId)).then(function (res) {
        if (res.ok) { card.remove(); refreshPhotos(); }
        else { btn.disabled = false; card.querySelector(".verdict").textContent = errorMessage(res); }
      });
    });
    return btn;
  }

  // Server-rendered photos: swap their no-JS delete forms for buttons that call the API.
  grid.querySelectorAll(".photo").forEach(function (card) {
    var formEl = card.querySelector("form");
    if (formEl) formEl.replaceWith(removeButton(card, card.dataset.photoId));
  });

  function addFiles(files) {
    Array.prototype.forEach.call(files, function (file) {
      var card = el("li", "photo checking");
      var thumb = el("div", "thumb");
      var preview = null;
      if (/^image\/(jpeg|png|gif|webp)$/.test(file.type)) {
        preview = el("img");
        preview.alt = "";
        preview.src = URL.createObjectURL(file);
        thumb.appendChild(preview);
      } else {
        thumb.appendChild(el("div", "spinner"));
      }
      var verdict = el("div", "verdict");
      verdict.appendChild(el("span", "name", file.name));
      verdict.appendChild(document.createTextNode("Checking…"));
      card.appendChild(thumb);
      card.appendChild(verdict);
      grid.appendChild(card);
      queue.push({ file: file, card: card, preview: preview });
    });
    refreshPhotos();
    pump();
  }

  function pump() {
    while (busy < CONCURRENCY && queue.length) {
      busy += 1;
      upload(queue.shift()).then(function () { busy -= 1; pump(); });
    }
  }

  function upload(job) {
    var body = new FormData();
    body.append("photo", job.file, job.file.name);
    return api("POST", photosUrl, body).then(function (res) {
      var card = job.card;
      var verdict = card.querySelector(".verdict");
      card.classList.remove("checking");
      verdict.textContent = "";
      if (res.ok) {
        card.classList.add("ok");
        card.dataset.photoId = res.data.id;
        var img = el("img");
        img.alt = "Accepted photo";
        img.src = res.data.thumbnail_url;
        var thumb = card.querySelector(".thumb");
        thumb.textContent = "";
        thumb.appendChild(img);
        verdict.textContent = "✓ Looks good";
        card.appendChild(removeButton(card, res.data.id));
      } else {
        card.classList.add("bad");
        verdict.appendChild(el("span", "name", job.file.name));
        verdict.appendChild(document.createTextNode(errorMessage(res, "This photo couldn't be used.")));
        var dismiss = removeButton(card, null);
        dismiss.title = dismiss.ariaLabel = "Dismiss";
        card.appendChild(dismiss);
      }
      if (job.preview && res.ok) URL.revokeObjectURL(job.preview.src);
      refreshPhotos();
    });
  }

  input.addEventListener("change", function () { addFiles(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (e) { e.preventDefault(); dropzone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    dropzone.addEventListener(type, function (e) { e.preventDefault(); dropzone.classList.remove("over"); });
  });
  dropzone.addEventListener("drop", function (e) {
    if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
  });
  // The whole zone opens the picker on click and Enter/Space.
  dropzone.setAttribute("tabindex", "0");
  dropzone.addEventListener("click", function (e) { if (e.target === dropzone || !e.target.closest("label,button,input")) input.click(); });
  dropzone.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });

  // --- saving answers as they are given -----------------------------------------------------------
  function setError(name, messages) {
    var node = document.querySelector('[data-error-for="' + name + '"]');
    if (!node) return;
    var text = [].concat(messages || []).map(function (m) { return typeof m === "string" ? m : Object.values(m).join(" "); }).join(" ");
    node.textContent = text;
    var holder = node.closest(".field, fieldset, .check, .card");
    if (holder) holder.classList.toggle("invalid", !!text);
    var control = form.querySelector('[name="' + name + '"]');
    if (control && control.type === "text") control.setAttribute("aria-invalid", text ? "true" : "false");
  }
  function clearError(name) { setError(name, []); }

  function saveState(key, text, cls) {
    var node = document.querySelector('[data-save-state="' + key + '"]');
    if (!node) return;
    node.textContent = text;
    node.className = "save-state" + (cls ? " " + cls : "");
  }

  function checked(name) {
    var node = form.querySelector('input[name="' + name + '"]:checked');
    return node ? node.value : null;
  }

  function save(kind, fieldName) {
    var url, body, stateKey;
    if (kind === "info") {
      url = root.dataset.infoUrl;
      body = {};
      body[fieldName] = fieldName === "full_name" ? form.full_name.value : checked(fieldName);
      stateKey = "info";
    } else if (kind === "styles") {
      url = root.dataset.stylesUrl;
      body = { styles: chosenStyles().map(function (c) { return c.value; }) };
      stateKey = "styles";
    } else {
      url = root.dataset.stylesUrl;
      body = { format: checked("format") };
      stateKey = "format";
    }
    saveState(stateKey, "Saving…");
    return api("PUT", url, body).then(function (res) {
      if (res.ok) {
        Object.keys(body).forEach(clearError);
        saveState(stateKey, "✓ Saved", "ok");
      } else {
        var fields = (res.data && res.data.error && res.data.error.fields) || {};
        Object.keys(body).forEach(function (k) { setError(k, fields[k]); });
        if (!Object.keys(fields).length && Object.keys(body).length) setError(Object.keys(body)[0], errorMessage(res));
        saveState(stateKey, "Not saved", "err");
      }
    });
  }

  var nameTimer = null;
  form.addEventListener("input", function (e) {
    if (e.target.name === "full_name") {
      clearTimeout(nameTimer);
      nameTimer = setTimeout(function () { save("info", "full_name"); }, 600);
      updateSummary();
    }
  });
  form.addEventListener("change", function (e) {
    var kind = e.target.dataset.autosave;
    if (kind === "info") save("info", e.target.name);
    else if (kind === "styles") { limitStyles(); save("styles"); }
    else if (kind === "format") save("format");
    else if (e.target.type === "checkbox") clearError(e.target.name);
    updateSummary();
  });

  // --- styles: stop at the package's limit ----------------------------------------------------------
  function chosenStyles() { return Array.prototype.slice.call(form.querySelectorAll('input[name="styles"]:checked')); }
  function limitStyles() {
    var n = chosenStyles().length;
    form.querySelectorAll('input[name="styles"]').forEach(function (box) { box.disabled = !box.checked && n >= maxStyles; });
    var counter = document.getElementById("style-counter");
    counter.textContent = "· " + n + " of " + maxStyles + " chosen";
    counter.classList.toggle("full", n >= maxStyles);
  }

  // --- live summary and step marks ---------------------------------------------------------------
  function labelOf(name) {
    var node = form.querySelector('input[name="' + name + '"]:checked');
    if (!node) return null;
    var title = node.closest("label").querySelector(".title") || node.closest("label").querySelector("span");
    return node.dataset.label || title.textContent.trim();
  }
  function setSummary(key, text, missing) {
    var dd = document.querySelector('[data-summary="' + key + '"]');
    dd.textContent = "";
    dd.appendChild(text ? document.createTextNode(text) : el("span", "missing", missing));
  }
  function updateSummary() {
    var name = form.full_name.value.trim();
    setSummary("full_name", name, "Not given yet");
    setSummary("gender", labelOf("gender"), "Not chosen yet");
    setSummary("eye_color", labelOf("eye_color"), "Not chosen yet");
    setSummary("glasses", labelOf("glasses"), "Not chosen yet");
    setSummary("format", labelOf("format"), "Not chosen yet");
    var dd = document.querySelector('[data-summary="styles"]');
    var extra = dd.querySelector(".muted");
    dd.textContent = "";
    var styles = chosenStyles();
    if (!styles.length) dd.appendChild(el("span", "missing", "None chosen yet"));
    styles.forEach(function (box) {
      var tag = el("span", "tag tag-gap", box.dataset.label);
      var sw = box.closest(".backdrop").querySelector(".swatch").cloneNode();
      sw.classList.remove("big");
      tag.prepend(sw);
      dd.appendChild(tag);
    });
    if (extra) dd.appendChild(extra);
    markSteps();
  }
  function markSteps() {
    var done = {
      photos: acceptedCount() > 0,
      about: !!(form.full_name.value.trim() && checked("gender") && checked("eye_color") && checked("glasses")),
      styles: chosenStyles().length > 0,
      format: !!checked("format"),
    };
    Object.keys(done).forEach(function (step) {
      var link = document.querySelector('[data-step="' + step + '"]');
      if (link) link.classList.toggle("done", done[step]);
      var head = document.querySelector('[data-head="' + step + '"]');
      if (head) head.classList.toggle("done", done[step]);
    });
  }

  // --- submit: one click only (the server is idempotent too) ------------------------------------------
  form.addEventListener("submit", function () {
    var button = form.querySelector("[data-submit]");
    setTimeout(function () { button.disabled = true; button.textContent = "Submitting…"; }, 0);
  });

  limitStyles();
  updateSummary();
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
