// Direct uploads: a package goes from the browser to storage in parts, through URLs the
// portal signs one part at a time. The portal never carries the bytes; it checks and records
// the package once every part is stored. Resumable: the upload id is kept in localStorage
// under the file's name, size and date, and storage is asked which parts it already holds.
(function () {
  "use strict";

  var PARALLEL = 3;
  var RETRIES = 4;
  var STORE_PREFIX = "assay-upload:";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // A JSON request to the portal; rejects with the portal's own message when refused.
  // ``controller`` (an AbortController) lets the caller drop the request.
  function api(method, url, body, controller) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    };
    if (controller) { options.signal = controller.signal; }
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(data.error || "The portal refused the request (" + response.status + ").");
          error.status = response.status;
          error.field = data.field;
          throw error;
        }
        return data;
      });
    });
  }

  function humanSize(bytes) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i += 1; }
    return (i === 0 ? String(bytes) : bytes.toFixed(1).replace(/\.0$/, "")) + " " + units[i];
  }

  function humanTime(seconds) {
    if (!isFinite(seconds) || seconds < 0) { return "—"; }
    seconds = Math.round(seconds);
    if (seconds < 60) { return seconds + " s"; }
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) { return minutes + " min " + (seconds % 60) + " s"; }
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text) { node.textContent = text; }
    return node;
  }

  // The panel under the file field: bar, figures, buttons and a message line.
  function Panel(anchor) {
    this.root = element("div", "upload-panel");
    this.root.hidden = true;
    this.title = element("p", "upload-title");
    this.bar = element("progress", "upload-bar");
    this.bar.max = 100;
    this.bar.value = 0;
    this.bar.setAttribute("aria-label", "Upload progress");
    this.figures = element("p", "upload-figures");
    this.figures.setAttribute("aria-live", "polite");
    this.message = element("p", "upload-message");
    this.message.setAttribute("role", "status");
    var buttons = element("div", "upload-buttons");
    this.pause = element("button", "btn btn-small btn-secondary", "Pause");
    this.resume = element("button", "btn btn-small btn-primary", "Resume");
    this.cancel = element("button", "btn btn-small btn-link", "Cancel upload");
    [this.pause, this.resume, this.cancel].forEach(function (b) { b.type = "button"; });
    buttons.append(this.pause, this.resume, this.cancel);
    this.root.append(this.title, this.bar, this.figures, buttons, this.message);
    anchor.after(this.root);
  }

  Panel.prototype.show = function (state) {
    this.root.hidden = false;
    this.root.dataset.state = state;
    this.pause.hidden = state !== "uploading";
    this.resume.hidden = state !== "paused" && state !== "failed";
    this.cancel.hidden = state === "finishing" || state === "done" || state === "idle";
  };

  Panel.prototype.say = function (text, isError) {
    this.message.textContent = text || "";
    this.message.setAttribute("role", isError ? "alert" : "status");
    this.message.classList.toggle("upload-error", Boolean(isError));
  };

  // One upload of one file; drives the parts and reports to the panel.
  function Upload(form, file, panel, submit) {
    this.form = form;
    this.file = file;
    this.panel = panel;
    this.submit = submit;
    this.session = null;
    this.done = {};        // part number -> bytes stored
    // Part number -> {xhr, loaded, request}: a part counts as on its way from the moment it
    // leaves the queue, while its URL is being signed as much as while its bytes are sent.
    this.active = {};
    this.queue = [];
    this.running = false;
    this.pausing = false;
    this.ended = false;    // finished or cancelled: nothing more is sent or asked for
    this.round = 0;        // bumped when the parts on their way are stopped
    this.samples = [];     // [time ms, bytes stored or in flight] for the speed
    this.storeKey = STORE_PREFIX + location.pathname + ":" + file.name + ":" + file.size + ":" + file.lastModified;
  }

  Upload.prototype.fields = function () {
    var data = { filename: this.file.name, size: this.file.size, submit: this.submit };
    var versionId = this.form.dataset.versionId;
    if (versionId) {
      data.version_id = Number(versionId);
      return data;
    }
    var assetId = this.form.dataset.assetId;  // a new version of this asset
    if (assetId) {
      data.asset_id = Number(assetId);
      data.version_label = this.form.elements.namedItem("version").value;
      return data;
    }
    var value = function (name) {
      var input = this.form.elements.namedItem(name);
      if (input && input.length !== undefined && !input.tagName) {  // a radio group
        var checked = this.form.querySelector('input[name="' + name + '"]:checked');
        return checked ? checked.value : "";
      }
      return input ? input.value : "";
    }.bind(this);
    data.name = value("name");
    data.kind = value("kind");
    data.description = value("description");
    data.version_label = value("version");
    return data;
  };

  Upload.prototype.begin = function () {
    var self = this;
    var saved = localStorage.getItem(this.storeKey);
    this.panel.title.textContent = "Uploading " + this.file.name + " (" + humanSize(this.file.size) + ") directly to storage";
    this.panel.show("preparing");
    this.panel.say(saved ? "Looking for the parts already uploaded…" : "Starting the upload…");
    var opened = saved
      ? api("GET", this.form.dataset.directUpload + "/" + saved).then(function (info) {
          if (info.state !== "open") { throw new Error("gone"); }
          return info;
        }).catch(function (error) {
          if (error.status === 401) { throw error; }
          localStorage.removeItem(self.storeKey);
          return api("POST", self.form.dataset.directUpload, self.fields());
        })
      : api("POST", this.form.dataset.directUpload, this.fields());
    return opened.then(function (session) {
      if (self.ended) {  // cancelled while it was being opened
        api("POST", session.urls.cancel).catch(function () {});
        return;
      }
      self.session = session;
      localStorage.setItem(self.storeKey, String(session.id));
      self.takeStock(session.parts || []);
      if (session.parts && session.parts.length) {
        self.panel.say("Resuming: " + session.parts.length + " of " + session.part_count + " parts were already stored.");
      } else {
        self.panel.say("");
      }
      self.run();
    }).catch(function (error) { if (!self.ended) { self.fail(error, true); } });
  };

  // What storage holds is the truth: parts it has are done, the rest is queued.
  Upload.prototype.takeStock = function (parts) {
    var self = this;
    this.done = {};
    parts.forEach(function (part) { self.done[part.number] = part.size; });
    this.queue = [];
    for (var n = 1; n <= this.session.part_count; n += 1) {
      if (!(n in this.done)) { this.queue.push(n); }
    }
    this.samples = [];
    this.render();
  };

  Upload.prototype.run = function () {
    this.running = true;
    this.panel.show("uploading");
    window.addEventListener("beforeunload", warnOnLeave);
    for (var i = 0; i < PARALLEL; i += 1) { this.next(); }
  };

  Upload.prototype.idle = function () {
    return !Object.keys(this.active).length;
  };

  // One worker: takes the next part off the queue; when none is left and no part is on its
  // way any more (being signed or sent), the upload is complete.
  Upload.prototype.next = function () {
    var self = this;
    if (this.ended) { return; }
    if (!this.running) {
      if (this.pausing && this.idle()) { this.paused(); }
      return;
    }
    if (!this.queue.length) {
      if (this.idle()) { this.finish(); }
      return;
    }
    var number = this.queue.shift();
    var slot = { xhr: null, loaded: 0, request: null, round: this.round };
    this.active[number] = slot;
    this.sendPart(number, slot, 0).then(function () {
      if (self.active[number] === slot) { delete self.active[number]; }
      if (slot.round === self.round) { self.next(); }
    }, function (error) {
      if (self.active[number] === slot) { delete self.active[number]; }
      // Stopped meanwhile (failure, cancel or completion): what to send is worked out afresh.
      if (slot.round !== self.round) { return; }
      self.queue.unshift(number);
      if (self.running) { self.fail(error); } else { self.next(); }
    });
  };

  function stopped() {
    return new Error("paused");
  }

  Upload.prototype.live = function (slot) {
    return this.running && !this.ended && slot.round === this.round;
  };

  Upload.prototype.sendPart = function (number, slot, attempt) {
    var self = this;
    var size = this.session.part_size;
    var blob = this.file.slice((number - 1) * size, Math.min(number * size, this.file.size));
    if (!this.live(slot)) { return Promise.reject(stopped()); }
    slot.request = typeof AbortController === "function" ? new AbortController() : null;
    return api("POST", this.session.urls.part + "/" + number, undefined, slot.request).then(function (signed) {
      slot.request = null;
      // Paused or stopped while the URL was signed: the part has not started, so it waits.
      if (!self.live(slot)) { throw stopped(); }
      return self.put(number, slot, signed.url, blob);
    }).catch(function (error) {
      slot.request = null;
      if (!self.live(slot) || error.status || attempt >= RETRIES) {
        throw self.live(slot) ? error : stopped();
      }
      return new Promise(function (resolve) { setTimeout(resolve, 1000 * Math.pow(2, attempt)); })
        .then(function () { return self.sendPart(number, slot, attempt + 1); });
    });
  };

  // XMLHttpRequest rather than fetch: it reports upload progress.
  Upload.prototype.put = function (number, slot, url, blob) {
    var self = this;
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      slot.xhr = xhr;
      slot.loaded = 0;
      xhr.open("PUT", url);
      xhr.upload.onprogress = function (event) {
        slot.loaded = event.loaded;
        self.render();
      };
      xhr.onload = function () {
        slot.xhr = null;
        slot.loaded = 0;
        if (xhr.status >= 200 && xhr.status < 300) {
          self.done[number] = blob.size;
          self.render();
          resolve();
        } else {
          reject(new Error("Storage refused part " + number + " (HTTP " + xhr.status + ")."));
        }
      };
      xhr.onerror = function () {
        slot.xhr = null;
        slot.loaded = 0;
        reject(new Error("The connection to storage was lost."));
      };
      xhr.onabort = function () {
        slot.xhr = null;
        slot.loaded = 0;
        reject(stopped());
      };
      xhr.send(blob);
    });
  };

  Upload.prototype.stored = function () {
    var total = 0;
    var key;
    for (key in this.done) { total += this.done[key]; }
    for (key in this.active) { if (!(key in this.done)) { total += this.active[key].loaded; } }
    return Math.min(total, this.file.size);
  };

  Upload.prototype.render = function () {
    var now = Date.now();
    var bytes = this.stored();
    this.samples.push([now, bytes]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 8000) { this.samples.shift(); }
    var first = this.samples[0];
    var elapsed = (now - first[0]) / 1000;
    var speed = elapsed > 0.5 ? (bytes - first[1]) / elapsed : 0;
    var percent = this.file.size ? (bytes / this.file.size) * 100 : 100;
    this.panel.bar.value = percent;
    this.panel.bar.textContent = Math.floor(percent) + "%";
    var text = Math.floor(percent) + "% · " + humanSize(bytes) + " of " + humanSize(this.file.size);
    if (this.running && speed > 0) {
      text += " · " + humanSize(speed) + "/s · " + humanTime((this.file.size - bytes) / speed) + " left";
    }
    this.panel.figures.textContent = text;
  };

  // Stop every part on its way (signing or sending); none of them is started again by this
  // round: whoever resumes asks storage what it holds.
  Upload.prototype.halt = function () {
    this.running = false;
    this.pausing = false;
    this.round += 1;
    window.removeEventListener("beforeunload", warnOnLeave);
    var active = this.active;
    this.active = {};
    for (var key in active) {
      if (active[key].request) { active[key].request.abort(); }
      if (active[key].xhr) { active[key].xhr.abort(); }
    }
  };

  // Parts being sent are let through (their bytes would be lost); a part whose URL is still
  // being signed waits in the queue; no new part starts.
  Upload.prototype.pause = function () {
    if (!this.running) { return; }
    this.running = false;
    this.pausing = true;
    if (!this.idle()) {
      this.panel.show("pausing");
      this.panel.say("Pausing once the parts on their way are stored…");
    } else {
      this.paused();
    }
  };

  Upload.prototype.paused = function () {
    this.pausing = false;
    window.removeEventListener("beforeunload", warnOnLeave);
    this.panel.show("paused");
    this.panel.say("Paused. Parts already stored are kept; Resume continues from there.");
    this.render();
  };

  // Ask storage again which parts it holds, then continue. Only once nothing is on its way
  // (paused, failed or refused at completion), and once at a time.
  Upload.prototype.resume = function () {
    var self = this;
    if (this.ended || this.running || this.resuming || !this.idle()) { return Promise.resolve(); }
    this.resuming = true;
    this.panel.say("Resuming…");
    this.panel.show("preparing");
    return api("GET", this.session.urls.self).then(function (info) {
      self.resuming = false;
      if (self.ended) { return; }
      if (info.state !== "open") { throw new Error("This upload was cancelled or abandoned; choose the file and start again."); }
      self.takeStock(info.parts);
      self.panel.say("");
      self.run();
    }).catch(function (error) {
      self.resuming = false;
      if (!self.ended) { self.fail(error, true); }
    });
  };

  Upload.prototype.cancel = function () {
    var self = this;
    this.halt();
    this.ended = true;
    localStorage.removeItem(this.storeKey);
    var ended = this.session ? api("POST", this.session.urls.cancel).catch(function () {}) : Promise.resolve();
    return ended.then(function () {
      self.panel.show("idle");
      self.panel.root.hidden = true;
      setFormBusy(self.form, false);
      current = null;
    });
  };

  Upload.prototype.finish = function () {
    var self = this;
    if (this.finishing) { return; }
    this.finishing = true;
    this.halt();
    this.panel.show("finishing");
    this.panel.bar.value = 100;
    this.panel.say("All parts stored. Checking the package…");
    api("POST", this.session.urls.complete).then(function (result) {
      self.ended = true;
      localStorage.removeItem(self.storeKey);
      self.panel.show("done");
      self.panel.say("Done. Opening the asset…");
      location.assign(result.location);
    }).catch(function (error) {
      self.finishing = false;
      if (/not been uploaded|instead of/.test(error.message)) {
        return self.resume();  // storage lost a part: send what is missing
      }
      if (!error.status || error.status >= 500) {
        return self.fail(error);  // the upload is kept open: Resume completes it again
      }
      self.ended = true;
      localStorage.removeItem(self.storeKey);
      self.panel.show("idle");
      self.panel.say(error.message, true);
      setFormBusy(self.form, false);
      current = null;
    });
  };

  Upload.prototype.fail = function (error, atStart) {
    this.halt();
    if (error.message === "paused") { return; }
    if (atStart && !this.session) {
      this.panel.show("idle");
      this.panel.say(error.message, true);
      setFormBusy(this.form, false);
      current = null;
      return;
    }
    this.panel.show("failed");
    this.panel.say(error.message + " Resume continues with the parts not yet stored.", true);
    this.render();
  };

  function warnOnLeave(event) {
    event.preventDefault();
    event.returnValue = "";
  }

  function setFormBusy(form, busy) {
    form.querySelectorAll("button[type=submit], input[type=submit], input[type=file], input[data-direct-choice]").forEach(function (control) {
      control.disabled = busy;
    });
    form.classList.toggle("is-uploading", busy);
  }

  var current = null;

  function goesDirect(form, file) {
    var box = form.querySelector("input[data-direct-choice]");
    return file.size > Number(form.dataset.threshold) || Boolean(box && box.checked);
  }

  function setUp(form) {
    var input = form.querySelector("input[type=file]");
    if (!input) { return; }
    var choice = form.querySelector("[data-direct-option]");
    if (choice) { choice.hidden = false; }
    var panel = new Panel(choice || input.closest(".field") || input);
    // Over the form limit is fine here: such files take the direct path.
    input.dataset.maxBytes = form.dataset.maxPackage;
    input.dataset.tooLarge = form.dataset.tooLarge;

    form.addEventListener("submit", function (event) {
      var file = input.files && input.files[0];
      if (!file || !goesDirect(form, file) || current) {
        if (current) { event.preventDefault(); }
        return;
      }
      event.preventDefault();
      var submitter = event.submitter;
      var submit = !form.dataset.versionId ? Boolean(submitter && submitter.name === "submit_review") : true;
      setFormBusy(form, true);
      current = new Upload(form, file, panel, submit);
      current.begin();
    });
    panel.pause.addEventListener("click", function () { if (current) { current.pause(); } });
    panel.resume.addEventListener("click", function () { if (current) { current.resume(); } });
    panel.cancel.addEventListener("click", function () { if (current) { current.cancel(); } });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-direct-upload]").forEach(setUp);
  });
})();
