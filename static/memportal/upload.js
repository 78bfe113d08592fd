// The upload page, enhanced: files dropped or picked appear at once as rows with the verdict of
// the checks the portal makes (extension, size, empty, the container's first bytes, how many files
// one selection may hold, how many uploads one person may have under way), in the server's words
// (uploads/forms.py, rendered into #upload-config). Each accepted file then goes on its own through
// the resumable endpoint (tus, uploads/tus.py) with tus-js-client: in chunks of the server's size,
// a few at a time, with progress, speed and time left; a dropped connection resumes from the
// server's offset; after a reload the server's list of unfinished uploads is offered, and picking
// the same file again (recognised by name, size and a cheap fingerprint) continues it; a session
// that ended asks to sign in again and then goes on. Pause, resume, cancel (the server's bytes are
// removed) per file. Without this script the form sends the files in one request, as before.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  var configNode = document.getElementById("upload-config");
  var tus = window.tus;
  if (!form || !configNode || !tus || !tus.isSupported || !window.fetch || !window.Promise ||
      !window.File || !File.prototype.slice || !window.TextEncoder) {
    return; // the plain form stays as it is
  }
  var config = JSON.parse(configNode.textContent);
  var W = config.wording;
  var input = form.querySelector("input[type=file]");
  var zone = document.getElementById("dropzone");
  var list = document.getElementById("upload-rows");
  var announcer = document.getElementById("upload-announcer");
  var titleInput = form.querySelector("[name=title]");
  var teamInput = form.querySelector("[name=team]");
  var endpoint = new URL(config.endpoint, window.location.href).href;
  // Each retry waits longer; together they outlast MEMPORTAL_UPLOAD_STALL_SECONDS, after which the
  // server lets a new request take over from one whose connection died without a word.
  var RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];
  var OFFLINE_RETRY_MS = 15000; // after RETRY_DELAYS ran out: try again this often, and when the link is back
  // A request that has sent nothing for this long is taken for a silently dead connection.
  var SILENT_MS = (2 * config.stall_seconds + 10) * 1000;
  var SAMPLE_BYTES = 64 * 1024; // fingerprint: this much at the start, middle and end of the file
  var FINAL = { ready: true, cancelled: true, failed: true, rejected: true };
  var ENDED = { refused: true, done: true, cancelled: true, skipped: true, failed: true };
  var RUNNING = { uploading: true, finishing: true, offline: true, "signed-out": true };
  var CONTROLS = "controls"; // Row.set's buttons: Pause or Resume, and Cancel, as the new state has them
  var rows = [];
  var unfinished = [];
  var nextId = 1;
  var signInTimer = null;
  var statesTimer = null;
  var refreshTimer = null;

  // ---- words and numbers ----
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (all, key) { return key in values ? values[key] : all; });
  }
  function notAccepted(name, reason) { return fill(W.not_accepted, { name: name, reason: reason }); }
  function sizeText(bytes) { // as Django's filesizeformat
    var nbsp = "\u00a0";
    if (bytes < 1024) { return bytes + nbsp + (bytes === 1 ? "byte" : "bytes"); }
    var units = ["KB", "MB", "GB", "TB", "PB"];
    var value = bytes / 1024;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return value.toFixed(1) + nbsp + units[unit];
  }
  function timeLeftText(seconds) {
    if (!isFinite(seconds)) { return ""; }
    if (seconds < 60) { return "about " + Math.max(1, Math.round(seconds)) + " s left"; }
    if (seconds < 3600) { return "about " + Math.round(seconds / 60) + " min left"; }
    var hours = Math.floor(seconds / 3600);
    return "about " + hours + " h " + Math.round((seconds - hours * 3600) / 60) + " min left";
  }
  function announce(text) { announcer.textContent = text; }
  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function button(label, name, action, className) {
    var node = element("button", className || "small", label);
    node.type = "button";
    node.setAttribute("aria-label", label + " " + name);
    node.setAttribute("data-role", label.toLowerCase().replace(/[^a-z]+/g, "-"));
    node.addEventListener("click", action);
    return node;
  }

  // ---- checks before a byte is sent (uploads/forms.py refusal_reason, worded alike) ----
  function extensionOf(name) {
    var dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(dot).toLowerCase() : "";
  }
  function ascii(bytes, start, end) { return String.fromCharCode.apply(null, bytes.subarray(start, end)); }
  function containerMatches(extension, head) {
    var box = ascii(head, 4, 8);
    if (extension === ".mp4") { return box === "ftyp"; }
    if (extension === ".mov") { return box === "ftyp" || config.quicktime_atoms.indexOf(box) !== -1; }
    if (extension === ".avi") { return ascii(head, 0, 4) === "RIFF" && ascii(head, 8, 12) === "AVI "; }
    if (extension === ".mkv") { return head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf && head[3] === 0xa3; }
    return false;
  }
  function readBytes(file, start, end) {
    var blob = file.slice(start, end);
    if (blob.arrayBuffer) { return blob.arrayBuffer(); }
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () { resolve(reader.result); };
      reader.onerror = function () { reject(reader.error); };
      reader.readAsArrayBuffer(blob);
    });
  }
  function refusal(file) {
    var extension = extensionOf(file.name);
    if (config.extensions.indexOf(extension) === -1) { return Promise.resolve(W.only_videos); }
    if (file.size === 0) { return Promise.resolve(W.empty); }
    if (file.size > config.max_bytes) { return Promise.resolve(W.too_large); }
    return readBytes(file, 0, 16).then(function (buffer) {
      return containerMatches(extension, new Uint8Array(buffer)) ? null : W.not_its_container[extension];
    });
  }

  // ---- the fingerprint: name, size, last change and three sampled slices; never the whole file ----
  function hex(bytes) {
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function fnv(bytes) { // where crypto.subtle is missing (plain http on another host than localhost)
    var out = new Uint8Array(16);
    for (var pass = 0; pass < 4; pass += 1) {
      var h = (0x811c9dc5 ^ (pass * 0x9e3779b9)) >>> 0;
      for (var i = 0; i < bytes.length; i += 1) { h = Math.imul(h ^ bytes[i], 16777619) >>> 0; }
      out.set([h >>> 24, (h >>> 16) & 255, (h >>> 8) & 255, h & 255], pass * 4);
    }
    return Promise.resolve(out);
  }
  function fingerprintOf(file) {
    var starts = [0, Math.max(0, Math.floor(file.size / 2) - SAMPLE_BYTES / 2), Math.max(0, file.size - SAMPLE_BYTES)];
    var unique = starts.filter(function (start, index) { return starts.indexOf(start) === index; });
    return Promise.all(unique.map(function (start) { return readBytes(file, start, start + SAMPLE_BYTES); }))
      .then(function (parts) {
        var label = new TextEncoder().encode([file.name, file.size, file.lastModified].join("\u0000"));
        var total = label.length + parts.reduce(function (sum, part) { return sum + part.byteLength; }, 0);
        var all = new Uint8Array(total);
        var at = 0;
        all.set(label, 0);
        at = label.length;
        parts.forEach(function (part) { all.set(new Uint8Array(part), at); at += part.byteLength; });
        var digest = window.crypto && window.crypto.subtle
          ? window.crypto.subtle.digest("SHA-256", all).then(function (d) { return new Uint8Array(d).slice(0, 16); })
          : fnv(all);
        return digest.then(function (bytes) { return "mp1-" + file.size + "-" + file.lastModified + "-" + hex(bytes); });
      });
  }

  // ---- rows ----
  function Row(file, title, team) {
    this.id = nextId++;
    this.file = file;
    this.title = title;
    this.team = team;
    this.state = "checking";
    this.url = null;       // the upload's address at the server, once made
    this.resumeUrl = null; // an unfinished upload of this file the server listed
    this.upload = null;
    this.samples = [];
    this.sent = 0;
    this.accepted = 0;
    this.lastActivity = Date.now();
    this.build();
  }

  Row.prototype.build = function () {
    var li = element("li", "upload-row");
    li.id = "upload-row-" + this.id;
    var head = element("div", "upload-head");
    this.nameNode = element("span", "upload-name", this.file.name);
    head.appendChild(this.nameNode);
    head.appendChild(element("span", "upload-size", sizeText(this.file.size)));
    this.badge = element("span", "status");
    this.badge.hidden = true;
    head.appendChild(this.badge);
    li.appendChild(head);
    this.meter = element("div", "upload-progress");
    this.progress = element("progress");
    this.progress.max = this.file.size || 1;
    this.progress.value = 0;
    this.progress.setAttribute("aria-label", "Sent of " + this.file.name);
    this.figures = element("span", "upload-figures");
    this.meter.appendChild(this.progress);
    this.meter.appendChild(this.figures);
    this.meter.hidden = true;
    li.appendChild(this.meter);
    this.message = element("p", "upload-state");
    li.appendChild(this.message);
    this.actions = element("div", "upload-actions");
    li.appendChild(this.actions);
    this.node = li;
    list.appendChild(li);
    document.getElementById("rows-title").hidden = false;
    document.querySelector(".rows-actions").hidden = false;
  };

  // Set the row's state and what it says; `parts` is text, or a list of text and nodes.
  Row.prototype.set = function (state, parts, buttons) {
    var before = this.state;
    var focused = document.activeElement; // about to be removed with the buttons (or the message's links)?
    var role = focused && (this.actions.contains(focused) || (focused !== this.message && this.message.contains(focused)))
      ? focused.getAttribute("data-role") || "" : null;
    this.state = state;
    this.node.setAttribute("data-state", state);
    this.node.className = "upload-row state-" + state;
    this.message.textContent = "";
    (Array.isArray(parts) ? parts : [parts]).forEach(function (part) {
      if (part === undefined || part === null) { return; }
      this.message.appendChild(typeof part === "string" ? document.createTextNode(part) : part);
    }, this);
    this.meter.hidden = !(state === "uploading" || state === "paused" || state === "offline" ||
                          state === "signed-out" || state === "finishing" || (state === "waiting" && this.sent > 0));
    this.actions.textContent = "";
    (buttons === CONTROLS ? this.controls() : buttons || []).forEach(function (b) { this.actions.appendChild(b); }, this);
    if (role !== null) { this.keepFocus(role); }
    if (state === "offline" && before !== "offline") {
      this.wasOffline = true;
      announce(this.file.name + ": " + this.message.textContent);
    }
  };

  // The button that had the keyboard's focus was replaced: the focus goes to its counterpart
  // (Pause <-> Resume), else the same role, else the row's first button, else its message.
  var COUNTERPART = { pause: "resume", resume: "pause" };
  Row.prototype.keepFocus = function (role) {
    var actions = this.actions;
    function find(name) { return name ? actions.querySelector("[data-role='" + name + "']") : null; }
    var next = find(COUNTERPART[role]) || find(role) || actions.querySelector("button") ||
               this.node.querySelector("a.upload-name");
    if (!next) {
      next = this.message;
      next.tabIndex = -1;
    }
    next.focus();
  };

  Row.prototype.controls = function () {
    var row = this;
    var name = this.file.name;
    var out = [];
    if (this.state === "finishing") { return out; } // all sent: it becomes a video, nothing to cancel
    if (this.state === "paused") {
      out.push(button("Resume", name, function () { row.resume(); }));
    } else {
      out.push(button("Pause", name, function () { row.pause(); }));
    }
    out.push(button("Cancel", name, function () { row.cancel(); }, "small secondary"));
    return out;
  };

  Row.prototype.refuse = function (text) {
    this.set("refused", text);
    announce(text);
  };

  Row.prototype.wait = function (note) {
    this.set("waiting", note || "Waiting for its turn.", CONTROLS);
  };

  Row.prototype.showProgress = function () {
    var total = this.file.size;
    var percent = total ? Math.floor(this.sent / total * 100) : 100;
    this.progress.value = this.sent;
    var text = percent + " %";
    var first = this.samples[0];
    var last = this.samples[this.samples.length - 1];
    if (this.state === "uploading" && first && last && last.t - first.t >= 500) {
      var speed = (last.bytes - first.bytes) / ((last.t - first.t) / 1000);
      if (speed > 0) {
        text += " · " + sizeText(Math.round(speed)) + "/s · " + timeLeftText((total - this.sent) / speed);
      }
    }
    this.figures.textContent = text;
  };

  Row.prototype.metadata = function () {
    var meta = { filename: this.file.name, fingerprint: this.fingerprint };
    if (this.file.type) { meta.filetype = this.file.type; }
    if (this.title) { meta.title = this.title; }
    if (this.team) { meta.team = this.team; }
    return meta;
  };

  Row.prototype.makeUpload = function () {
    var row = this;
    var upload = null;
    // An upload given up (restarted, cancelled) must not touch the row any more.
    function live() { return row.upload === upload; }
    upload = this.upload = new tus.Upload(this.file, {
      endpoint: endpoint,
      uploadUrl: this.resumeUrl,
      chunkSize: config.chunk_size, // the server's Memportal-Chunk-Size: one PATCH never holds more
      parallelUploads: 1,
      retryDelays: RETRY_DELAYS,
      metadata: this.metadata(),
      fingerprint: function () { return Promise.resolve(row.fingerprint); },
      storeFingerprintForResuming: false, // the server's list (GET /uploads/tus/) is the record
      onBeforeRequest: function (req) {
        if (!live() && req.getMethod() !== "DELETE") { throw new Error("given up"); }
        row.lastActivity = Date.now();
        req.setHeader("X-CSRFToken", csrfToken()); // read each time: signing in again changes it
        if (req.getMethod() !== "POST") { return undefined; }
        // A creation whose answer never came (aborted, cut, a gateway's 5xx) may have made the
        // upload all the same: go on with that one rather than make a second.
        return (row.mayHaveOrphan ? orphanOf(row) : Promise.resolve(null)).then(function (url) {
          if (!live()) { throw new Error("given up"); }
          if (url) { throw new Adopt(url); }
          row.mayHaveOrphan = true; // until its answer says otherwise
          row.creating = true;
          row.lastActivity = Date.now();
        });
      },
      onAfterResponse: function (req, res) {
        if (!live() && req.getMethod() !== "DELETE") { throw new Error("given up"); }
        row.lastActivity = Date.now();
        var status = res.getStatus();
        var method = req.getMethod();
        if (method === "POST") {
          row.creating = false;
          if (status >= 400 && status < 500) { row.mayHaveOrphan = false; } // refused: nothing was made
        }
        if (status === 401) { throw new SignedOut(); } // keep the upload's address: never start anew
        if (method === "HEAD" && (status < 200 || status >= 300)) {
          // tus-js-client makes a new upload after any failed resume check but 423: the file from
          // zero, the old upload left holding its bytes (or finished by the clock: two videos).
          // Only an upload the portal no longer has may start again; otherwise the check fails
          // (thrown here) and is asked again, or the row says why.
          if (status !== 404 && status !== 410) {
            throw new ResumeCheckFailed(res, status === 0 || status === 409 || status === 423 || status >= 500);
          }
          row.note = "The portal no longer had this upload (it expired or was cancelled): it starts again from the beginning.";
          row.url = row.resumeUrl = null;
        }
        if (res.getHeader("Memportal-Video-Url")) {
          row.videoUrl = res.getHeader("Memportal-Video-Url");
          row.videoId = res.getHeader("Memportal-Video-Id");
        }
        if (upload.url) { row.url = upload.url; }
      },
      onUploadUrlAvailable: function () {
        if (!live()) { return; }
        row.url = upload.url;
        remember(upload.url);
        row.creating = row.mayHaveOrphan = false;
        var pending = row.pending; // a pause or cancel asked for while the upload was being made
        row.pending = null;
        if (pending) { upload.abort(false); }
        if (pending === "cancel") { row.terminate(); }
      },
      onShouldRetry: function (err, attempt) {
        row.creating = false;
        if (!live() || err.causingError instanceof SignedOut || err.causingError instanceof Adopt) { return false; }
        if (row.state === "paused" || row.state === "cancelling") { return false; } // asked during a creation
        var status = statusOf(err);
        // No answer or a broken one (the link: a cut can leave a 2xx without its Upload-Offset),
        // 409 (another offset: ask again), 423 (a dead request still holds the upload), 5xx: try
        // again, from the offset a HEAD gives. Other refusals are the server's word.
        var again = err.causingError instanceof ResumeCheckFailed ? err.causingError.retry
          : status < 400 || status === 409 || status === 423 || status >= 500;
        if (again) {
          row.lastActivity = Date.now() + RETRY_DELAYS[attempt]; // waiting on purpose, not silent
          if (status < 400 && row.state === "uploading") {
            row.set("offline", "The connection dropped: trying again…", CONTROLS);
          }
        }
        return again;
      },
      onProgress: function (sent) {
        if (!live()) { return; }
        row.lastActivity = Date.now();
        if (row.wasOffline && sent > row.sent) {
          row.wasOffline = false;
          announce(row.file.name + ": the link is back, the upload goes on.");
        }
        if (row.state !== "uploading" || row.transient) {
          row.transient = false;
          row.set("uploading", row.note || "Uploading.", CONTROLS);
        }
        row.sent = sent;
        row.samples.push({ t: Date.now(), bytes: sent });
        while (row.samples.length > 2 && row.samples[0].t < Date.now() - 8000) { row.samples.shift(); }
        row.showProgress();
      },
      onChunkComplete: function (size, accepted, total) {
        if (!live()) { return; }
        row.accepted = accepted;
        if (upload.url) { row.url = upload.url; }
        if (accepted === total) { row.set("finishing", "All sent: the portal is storing it.", CONTROLS); }
      },
      onSuccess: function (payload) { if (live()) { row.succeeded(payload && payload.lastResponse); } },
      onError: function (err) { if (live()) { row.failed(err); } }
    });
  };

  function SignedOut() { this.message = "signed out"; }
  SignedOut.prototype = Object.create(Error.prototype);
  // A resume check (HEAD) answered with neither the offset nor "no such upload": ask again
  // (`retry`) or say why; never a new upload.
  function ResumeCheckFailed(res, retry) {
    this.message = "the portal answered " + res.getStatus();
    this.response = res;
    this.retry = retry;
  }
  ResumeCheckFailed.prototype = Object.create(Error.prototype);
  // The portal has an upload of this file that an earlier creation made: go on with it.
  function Adopt(url) { this.message = "an upload of this file was made already"; this.url = url; }
  Adopt.prototype = Object.create(Error.prototype);
  function responseOf(err) {
    return (err && err.originalResponse) || (err && err.causingError && err.causingError.response) || null;
  }
  function statusOf(err) {
    var res = responseOf(err);
    return res ? res.getStatus() : 0;
  }

  // Start, or go on: a new tus upload each time, from the server's offset (HEAD) when the
  // server has it already, so nothing of an upload given up can run alongside.
  Row.prototype.start = function (message) {
    if (this.creating && this.pending === "pause") { // resumed before the creation's answer came: it goes on
      this.pending = null;
      this.set("uploading", "Starting…", CONTROLS);
      return;
    }
    if (this.upload) { this.upload.abort(false); }
    this.creating = false;
    this.pending = null;
    if (this.url) { this.resumeUrl = this.url; }
    this.makeUpload();
    this.samples = [];
    this.lastActivity = Date.now();
    this.transient = true;
    this.set("uploading", this.note || message || (this.resumeUrl ? "Going on from where it stopped…" : "Starting…"),
             CONTROLS);
    this.showProgress();
    this.upload.start();
  };

  Row.prototype.pause = function () {
    // Being made: the creation's answer names the upload, so it is let through (then stopped);
    // aborted, the portal would make it all the same and the row never learn of it.
    if (this.creating) { this.pending = "pause"; } else if (this.upload) { this.upload.abort(false); }
    window.clearTimeout(this.retryTimer);
    this.set("paused", "Paused. What the portal has is kept; Resume goes on from there.", CONTROLS);
    this.showProgress();
    pump();
  };

  Row.prototype.resume = function () {
    this.note = null;
    if (runningCount() < config.at_once) { this.start(); } else { this.wait(); }
  };

  Row.prototype.cancel = function () {
    window.clearTimeout(this.retryTimer);
    this.set("cancelling", "Cancelling…");
    if (this.creating) { this.pending = "cancel"; return; } // the creation's answer names what to remove
    this.terminate();
  };

  // The cancel itself: whatever the portal has of this file (made here, or an unfinished upload
  // recognised and still waiting its turn) is removed (DELETE).
  Row.prototype.terminate = function () {
    var row = this;
    var url = (this.upload && this.upload.url) || this.url || this.resumeUrl;
    var orphan = !url && this.mayHaveOrphan;
    this.pending = null;
    if (this.upload) { this.upload.abort(false); }
    var done = !url ? Promise.resolve() : tus.Upload.terminate(url, {
      retryDelays: [0, 1000, 3000],
      onBeforeRequest: function (req) { req.setHeader("X-CSRFToken", csrfToken()); },
      onAfterResponse: function (req, res) { if (res.getStatus() === 401) { throw new SignedOut(); } },
      onShouldRetry: function (err) {
        var status = statusOf(err);
        return !(err.causingError instanceof SignedOut) && (status === 0 || status === 423 || status >= 500);
      }
    });
    done.then(function () { return null; }, function (err) {
      var status = statusOf(err);
      return status === 404 || status === 410 ? null : err; // gone already: what was wanted
    }).then(function (err) {
      if (err && statusOf(err) === 409) { // all of it had arrived: it is a video now
        row.url = url;
        row.set("finishing", "It was all sent before the cancel reached the portal: it is a video now (delete it " +
                "from its page if it is not wanted).");
        announce(row.file.name + ": " + row.message.textContent);
        row.askForVideo();
        return;
      }
      if (err) {
        var signedOut = err.causingError instanceof SignedOut;
        row.set("paused", signedOut ? W.signed_out + " Then cancel again."
          : "It could not be cancelled (" + serverText(err) + "): try again.", CONTROLS);
        return;
      }
      row.url = row.resumeUrl = null;
      row.set("cancelled", url ? "Cancelled: the portal removed what it had of this file." : "Cancelled: nothing was sent.");
      announce(row.file.name + " cancelled.");
      if (orphan) { removeOrphanOf(row); }
      pump();
    });
  };

  Row.prototype.succeeded = function (response) {
    var row = this;
    this.sent = this.file.size;
    this.showProgress();
    if (!this.videoUrl) { // complete, but being finished right now: its video comes with a later HEAD
      this.set("finishing", "All sent: the portal is storing it.");
      window.setTimeout(function () { row.askForVideo(); }, 1500);
      return;
    }
    var link = element("a", "upload-name", this.file.name);
    link.href = this.videoUrl;
    this.nameNode.replaceWith(link);
    this.nameNode = link;
    this.badge.hidden = false;
    this.badge.className = "status status-queued";
    this.badge.textContent = "Queued";
    this.badge.setAttribute("data-status", "queued");
    var page = element("a", null, "its page");
    page.href = this.videoUrl;
    this.set("done", ["Uploaded: stored and queued for memories.ai. Follow it on ", page, "."]);
    announce(this.file.name + " uploaded.");
    pump();
    watchStates();
  };

  Row.prototype.askForVideo = function () {
    var row = this;
    fetch(this.url, { method: "HEAD", credentials: "same-origin", headers: { "Tus-Resumable": "1.0.0" } })
      .then(function (res) {
        if (res.headers.get("Memportal-Video-Url")) {
          row.videoUrl = res.headers.get("Memportal-Video-Url");
          row.videoId = res.headers.get("Memportal-Video-Id");
          row.succeeded(null);
        } else {
          window.setTimeout(function () { row.askForVideo(); }, 2000);
        }
      }, function () { window.setTimeout(function () { row.askForVideo(); }, 5000); });
  };

  Row.prototype.failed = function (err) {
    var row = this;
    this.creating = false;
    if (err && err.causingError instanceof Adopt) { // an earlier creation made it: go on with that one
      this.url = this.resumeUrl = err.causingError.url;
      this.mayHaveOrphan = false;
    }
    if (this.pending === "cancel") { this.terminate(); return; } // the creation it waited for failed
    if (this.state === "cancelling" || this.state === "cancelled" || this.state === "paused") { return; }
    if (err && err.causingError instanceof Adopt) { this.start("Going on with the upload the portal made of it…"); return; }
    if (err && err.causingError instanceof SignedOut) {
      var link = element("a", null, "Sign in (a new tab)");
      link.href = config.sign_in_url;
      link.target = "_blank";
      link.rel = "noopener";
      this.set("signed-out", [W.signed_out + " ", link], CONTROLS);
      announce(W.signed_out);
      waitForSignIn();
      return;
    }
    if (!err || !err.originalRequest) { // not the link: the file itself (moved, changed, unreadable)
      this.set("failed", "It could not be read here (" + (err && err.message ? err.message : err) + "): pick it again.");
      pump();
      return;
    }
    var status = statusOf(err);
    if (status === 429) { // the server counts this person's uploads under way: wait for one to end
      var after = parseInt(responseOf(err).getHeader("Retry-After"), 10) || 60;
      this.wait(serverText(err) + " (It starts by itself when it can.)");
      window.setTimeout(pump, Math.min(after, 60) * 1000);
      return;
    }
    if (status < 400 || status >= 500) { // the link is down, or the server is: go on when it is back
      this.set("offline", (status >= 500 ? serverText(err) + " " : "The connection dropped. ") +
        "The upload goes on by itself from where the portal stopped receiving it.", CONTROLS);
      window.clearTimeout(this.retryTimer);
      this.retryTimer = window.setTimeout(function () { if (row.state === "offline") { row.start("Trying again…"); } }, OFFLINE_RETRY_MS);
      return;
    }
    this.set("failed", serverText(err));
    announce(serverText(err));
    pump();
  };

  function serverText(err) {
    var res = responseOf(err);
    var body = res && res.getBody ? String(res.getBody() || "").trim() : "";
    if (body && body.charAt(0) !== "<" && body.length < 600) { return body; }
    if (res) { return "the portal answered " + res.getStatus() + (err.message ? " (" + err.message + ")" : ""); }
    return err && err.message ? err.message : "it failed";
  }

  // ---- the queue: a few at a time, within the server's limit of uploads under way ----
  function runningCount() {
    return rows.filter(function (row) { return RUNNING[row.state]; }).length;
  }
  function inFlightCount() {
    var here = rows.filter(function (row) { // made at the server, or being made
      return (row.url || RUNNING[row.state]) && !ENDED[row.state] && row.state !== "cancelling";
    }).length;
    return here + unfinished.length;
  }
  function pump() {
    var waiting = rows.filter(function (row) { return row.state === "waiting"; });
    for (var i = 0; i < waiting.length && runningCount() < config.at_once; i += 1) {
      var row = waiting[i];
      var creates = !row.resumeUrl && !row.url;
      if (creates && inFlightCount() >= config.in_flight_per_user) {
        row.wait("Waiting: " + fill(W.too_many_in_flight, { count: inFlightCount() }) +
                 ". It starts by itself when one ends.");
        return;
      }
      row.start();
    }
  }

  // Silent connections: a request that sends nothing for SILENT_MS while bytes of its chunk are
  // still to go is dropped and the upload asks the server where it stands (HEAD), then goes on.
  window.setInterval(function () {
    rows.forEach(function (row) {
      if (row.state !== "uploading" || !row.upload) { return; }
      var chunkEnd = Math.min(row.accepted + config.chunk_size, row.file.size);
      if (row.sent < chunkEnd && Date.now() - row.lastActivity > SILENT_MS) { row.start("Nothing got through for a while: trying again…"); }
    });
  }, 2000);

  window.addEventListener("online", function () {
    rows.forEach(function (row) { if (row.state === "offline") { row.start("The link is back: going on…"); } });
  });

  // ---- a session that ended: sign in (another tab), then every such upload goes on ----
  function waitForSignIn() {
    if (signInTimer) { return; }
    var check = function () {
      fetch(endpoint, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (res) {
        if (res.status !== 200) { signInTimer = window.setTimeout(check, 3000); return; }
        signInTimer = null;
        rows.forEach(function (row) { if (row.state === "signed-out") { row.note = null; row.start(); } });
        pump();
      }, function () { signInTimer = window.setTimeout(check, 3000); });
    };
    signInTimer = window.setTimeout(check, 3000);
    window.addEventListener("focus", function once() {
      window.removeEventListener("focus", once);
      if (signInTimer) { window.clearTimeout(signInTimer); check(); }
    });
  }

  // ---- the finished rows' states, kept fresh as on "My videos" (/videos/states/) ----
  function watchStates() {
    if (statesTimer) { return; }
    statesTimer = window.setTimeout(function refresh() {
      statesTimer = null;
      var pending = rows.filter(function (row) { return row.state === "done" && row.videoId && !FINAL[row.badge.getAttribute("data-status")]; });
      if (!pending.length) { return; }
      var ids = pending.map(function (row) { return row.videoId; });
      fetch(config.states_url, { method: "POST", credentials: "same-origin", body: JSON.stringify({ ids: ids }),
                                 headers: { Accept: "application/json", "Content-Type": "application/json",
                                            "X-CSRFToken": csrfToken() } })
        .then(function (res) { return res.ok && !res.redirected ? res.json() : { videos: {} }; })
        .then(function (data) {
          pending.forEach(function (row) {
            var state = data.videos[row.videoId];
            if (!state) { return; }
            row.badge.className = "status status-" + state.status;
            row.badge.textContent = state.label;
            row.badge.setAttribute("data-status", state.status);
          });
        }, function () { return null; })
        .then(function () { statesTimer = window.setTimeout(refresh, 3000); });
    }, 3000);
  }

  // ---- duplicates: the same name and size, or fingerprint, among the team's videos (GET /videos/duplicates/) ----
  function lookUpDuplicates(row) {
    var query = "?name=" + encodeURIComponent(row.file.name) + "&size=" + row.file.size +
                (row.fingerprint ? "&fingerprint=" + encodeURIComponent(row.fingerprint) : "") +
                (row.team ? "&team=" + encodeURIComponent(row.team) : "");
    return fetch(config.duplicates_url + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) { return res.ok && !res.redirected ? res.json() : null; }, function () { return null; });
  }
  function warnDuplicate(row, found) {
    var name = row.file.name;
    var parts = [];
    if (found.videos.length) {
      var video = found.videos[0];
      var link = element("a", null, "“" + video.name + "”");
      link.href = video.url;
      parts.push(video.mine ? "You uploaded this file before: " : "Your team has this file already (uploaded by " + video.owner + "): ");
      parts.push(link, " (" + video.label + ", " + video.uploaded + ").");
    } else {
      parts.push("Your team already has this file.");
    }
    parts.push(" Uploading it again uses another of the team's memories.ai uploads.");
    row.set("duplicate", parts, [
      button("Upload anyway", name, function () { row.wait(); pump(); }),
      button("Skip", name, function () { row.set("skipped", "Skipped: not uploaded."); }, "small secondary")
    ]);
    announce(name + ": " + row.message.textContent);
  }

  // ---- unfinished uploads the server keeps (after a reload, a crash, another tab) ----
  function percentOf(entry) { return entry.length ? Math.floor(entry.offset / entry.length * 100) : 0; }
  var ELSEWHERE = "It is being sent from another tab or window right now (or was until a moment ago).";
  function renderUnfinished() {
    var section = document.getElementById("unfinished");
    var ul = document.getElementById("unfinished-list");
    ul.textContent = "";
    section.hidden = unfinished.length === 0;
    unfinished.forEach(function (entry) {
      var li = element("li", "upload-row state-unfinished");
      li.setAttribute("data-url", entry.url);
      var head = element("div", "upload-head");
      head.appendChild(element("span", "upload-name", entry.filename));
      head.appendChild(element("span", "upload-size", sizeText(entry.length)));
      li.appendChild(head);
      var expires = new Date(entry.expires_at);
      var state = element("p", "upload-state", percentOf(entry) + " % is on the portal (" + sizeText(entry.offset) +
        "), kept until " + expires.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) + ". " +
        (entry.active ? ELSEWHERE + " It goes on there; picking “" + entry.filename + "” here waits until it stops."
          : "Pick “" + entry.filename + "” again to go on."));
      li.appendChild(state);
      if (entry.active) { li.setAttribute("data-active", "true"); }
      var actions = element("div", "upload-actions");
      actions.appendChild(button("Pick the file", entry.filename, function () { input.click(); }));
      actions.appendChild(button("Discard", entry.filename, function () {
        if (!entry.active) { discard(entry, li); return; }
        // Another tab's upload: discarding it there stops it; ask first.
        actions.textContent = "";
        state.textContent = ELSEWHERE + " Discarding it here stops it there and removes what the portal has. Discard it?";
        var sure = button("Discard anyway", entry.filename, function () { discard(entry, li); }, "small secondary");
        actions.appendChild(sure);
        actions.appendChild(button("Keep it", entry.filename, function () { renderUnfinished(); }));
        sure.focus();
      }, "small secondary"));
      li.appendChild(actions);
      ul.appendChild(li);
    });
  }
  function deleteUpload(url) {
    return fetch(url, { method: "DELETE", credentials: "same-origin",
                        headers: { "Tus-Resumable": "1.0.0", "X-CSRFToken": csrfToken() } });
  }
  function discard(entry, li) {
    deleteUpload(new URL(entry.url, window.location.href).href).then(function (res) {
      if (res.status === 204 || res.status === 404) {
        unfinished = unfinished.filter(function (other) { return other !== entry; });
        renderUnfinished();
        announce(entry.filename + ": discarded, the portal removed what it had.");
        pump();
      } else {
        return res.text().then(function (text) { li.querySelector(".upload-state").textContent = text.trim(); });
      }
    }).catch(function () {
      li.querySelector(".upload-state").textContent = "It could not be discarded (no answer from the portal): try again.";
    });
  }
  function fetchUnfinished() {
    return fetch(endpoint, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) { return res.ok ? res.json() : { uploads: [] }; }, function () { return { uploads: [] }; })
      .then(function (data) { return data.uploads || []; });
  }
  function absolute(url) { return new URL(url, window.location.href).href; }
  // The uploads this tab sent (sessionStorage: this tab's own, kept across a reload), so that
  // after a reload its own unfinished uploads are not taken for another tab's.
  var SENT_HERE = "memportal-uploads-sent-here";
  function sentHere() {
    try { return JSON.parse(window.sessionStorage.getItem(SENT_HERE) || "[]"); } catch (e) { return []; }
  }
  function remember(url) {
    var urls = sentHere().filter(function (other) { return other !== url; }).concat([absolute(url)]).slice(-50);
    try { window.sessionStorage.setItem(SENT_HERE, JSON.stringify(urls)); } catch (e) { /* private mode: no matter */ }
  }
  function mineAfterAReload(uploads) {
    var here = sentHere();
    uploads.forEach(function (entry) { if (here.indexOf(absolute(entry.url)) !== -1) { entry.active = false; } });
    return uploads;
  }
  function knownUrls() {
    return rows.map(function (other) { return other.url || other.resumeUrl; }).filter(Boolean)
      .concat(unfinished.map(function (entry) { return absolute(entry.url); }));
  }
  // An upload of this row's file the portal has and nothing on the page knows of (an earlier
  // creation whose answer never came): its address, or null.
  function orphanOf(row) {
    return fetchUnfinished().then(function (uploads) {
      var known = knownUrls();
      var found = uploads.filter(function (entry) {
        return entry.fingerprint === row.fingerprint && entry.filename === row.file.name &&
               entry.length === row.file.size && known.indexOf(absolute(entry.url)) === -1;
      })[0];
      return found ? absolute(found.url) : null;
    });
  }
  // The list again while an upload in it is being sent from elsewhere: it says when that stops,
  // and a file picked meanwhile goes on here then.
  function refreshUnfinished() {
    if (refreshTimer || !unfinished.some(function (entry) { return entry.active; })) { return; }
    refreshTimer = window.setTimeout(function () {
      refreshTimer = null;
      fetchUnfinished().then(function (uploads) {
        var taken = rows.map(function (other) { return other.url || other.resumeUrl; }).filter(Boolean);
        unfinished = mineAfterAReload(uploads).filter(function (entry) { return taken.indexOf(absolute(entry.url)) === -1; });
        rows.forEach(function (row) { if (row.state === "held") { row.recognise(); } });
        renderUnfinished();
        refreshUnfinished();
        pump();
      });
    }, (config.stall_seconds + 1) * 1000);
  }
  // A cancel while the upload was being made: the server may have made it after all.
  function removeOrphanOf(row) {
    window.setTimeout(function () {
      fetchUnfinished().then(function (uploads) {
        var known = rows.map(function (other) { return other.url || other.resumeUrl; });
        uploads.forEach(function (entry) {
          var url = new URL(entry.url, window.location.href).href;
          if (entry.fingerprint === row.fingerprint && entry.offset === 0 && known.indexOf(url) === -1) { deleteUpload(url); }
        });
      });
    }, 1000);
  }

  // ---- a selection: each file a row at once, its verdict, then its turn ----
  function numberedTitle(title, index) {
    var suffix = " (" + index + ")";
    return title.slice(0, config.title_max_length - suffix.length).replace(/\s+$/, "") + suffix;
  }
  function addFiles(fileList) {
    var files = Array.prototype.slice.call(fileList);
    if (!files.length) { return; }
    var title = titleInput ? titleInput.value.trim() : "";
    var team = teamInput ? teamInput.value : "";
    var made = files.map(function (file, index) {
      var row = new Row(file, files.length > 1 && title ? numberedTitle(title, index + 1) : title, team);
      rows.push(row);
      return row;
    });
    if (files.length > config.files_per_selection) {
      made.forEach(function (row) { row.set("refused", notAccepted(row.file.name, W.too_many_chosen)); });
      announce(files.length + " files chosen: " + W.too_many_chosen + ".");
      return;
    }
    made.forEach(function (row) { row.set("checking", "Checking…"); });
    announce(files.length === 1 ? "1 file added." : files.length + " files added.");
    made.reduce(function (previous, row) { // one by one, so they queue in the order chosen
      return previous.then(function () { return judge(row); });
    }, Promise.resolve());
  }
  function judge(row) {
    return refusal(row.file).then(function (reason) {
      if (reason) { row.refuse(notAccepted(row.file.name, reason)); return null; }
      return fingerprintOf(row.file).then(function (fingerprint) {
        row.fingerprint = fingerprint;
        var twin = rows.filter(function (other) {
          return other !== row && other.fingerprint === fingerprint && !ENDED[other.state] && other.state !== "duplicate";
        })[0];
        if (twin) { row.refuse("“" + row.file.name + "” is in the list already."); return null; }
        return row.recognise();
      });
    }).catch(function (error) {
      row.set("failed", "It could not be read here (" + (error && error.message ? error.message : error) + "): pick it again.");
    });
  }

  // An unfinished upload of this file in the server's list: go on from its offset (or, while
  // another tab sends it, hold until that stops); else a new upload, after the duplicate check.
  Row.prototype.recognise = function () {
    var row = this;
    var entry = unfinished.filter(function (e) {
      return e.fingerprint === row.fingerprint && e.filename === row.file.name && e.length === row.file.size;
    })[0];
    if (entry && entry.active) {
      this.set("held", "Recognised. " + ELSEWHERE + " It goes on here once it stops there.", [
        button("Remove", this.file.name, function () { row.set("skipped", "Removed from this list: not sent from here."); },
               "small secondary")]);
      refreshUnfinished();
      return null;
    }
    if (entry) { // the same file again: go on from the server's offset
      this.resumeUrl = absolute(entry.url);
      this.sent = entry.offset;
      this.progress.value = entry.offset;
      unfinished = unfinished.filter(function (other) { return other !== entry; });
      renderUnfinished();
      this.wait("Recognised: it goes on from " + percentOf(entry) + " %.");
      pump();
      return null;
    }
    return lookUpDuplicates(row).then(function (found) {
      if (found && (found.videos.length || found.team_has_it)) { warnDuplicate(row, found); return; }
      row.wait();
      pump();
    });
  };

  // ---- the page ----
  form.classList.add("enhanced");
  document.getElementById("resumable").hidden = false;
  zone.querySelector(".dropzone-hint").hidden = false;
  document.getElementById("upload-submit").hidden = true;
  input.addEventListener("change", function () { addFiles(input.files); input.value = ""; });
  form.addEventListener("submit", function (event) { event.preventDefault(); addFiles(input.files); input.value = ""; });
  var depth = 0;
  zone.addEventListener("dragenter", function (event) { event.preventDefault(); depth += 1; zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", function () { depth = Math.max(0, depth - 1); if (!depth) { zone.classList.remove("dragging"); } });
  zone.addEventListener("dragover", function (event) { event.preventDefault(); event.dataTransfer.dropEffect = "copy"; });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    depth = 0;
    zone.classList.remove("dragging");
    addFiles(event.dataTransfer.files);
  });
  // A file dropped beside the zone must not replace the page (and its uploads) with the file.
  window.addEventListener("dragover", function (event) { event.preventDefault(); });
  window.addEventListener("drop", function (event) { event.preventDefault(); });
  document.getElementById("clear-rows").addEventListener("click", function () {
    rows = rows.filter(function (row) {
      var gone = ENDED[row.state];
      if (gone) { row.node.remove(); }
      return !gone;
    });
    if (!rows.length) {
      document.getElementById("rows-title").hidden = true;
      document.querySelector(".rows-actions").hidden = true;
    }
  });
  window.addEventListener("beforeunload", function (event) {
    var busy = rows.some(function (row) { return !ENDED[row.state] && row.state !== "duplicate"; });
    if (busy) { event.preventDefault(); event.returnValue = ""; }
  });
  fetchUnfinished().then(function (uploads) {
    unfinished = mineAfterAReload(uploads);
    renderUnfinished();
    refreshUnfinished();
  });
}());
