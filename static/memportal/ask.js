// The question box (templates/uploads/_ask.html): it POSTs the question with fetch, the CSRF token
// in a header, asking for text/event-stream, and reads the answer's events from the response body
// as they arrive (EventSource cannot POST). Each event is one `data: {json}` block of the portal's
// own (uploads/asking.py events): started, thinking, content (a piece of text, appended as text,
// never as HTML), moments (cited moments, as links), done, error. A refusal before any answer is
// a JSON body with a message in words, the seconds to wait (the Ask button comes back after them,
// counted down) and, when memories.ai refused it, the conversation that keeps it. A cited moment
// of the video whose player is on the page seeks it instead of leaving the page. Without
// JavaScript the form posts and the conversation's page shows the whole answer.
(function () {
  "use strict";

  function player() {
    return document.getElementById("player");
  }

  function seek(link) {
    var video = player();
    var start = parseFloat(link.getAttribute("data-seek"));
    if (!video || video.getAttribute("data-video-id") !== link.getAttribute("data-seek-video") || isNaN(start)) {
      return false;
    }
    video.currentTime = start;
    video.scrollIntoView({ block: "nearest" });
    var playing = video.play();
    if (playing && playing.catch) { playing.catch(function () { /* it is at the time, paused */ }); }
    return true;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[data-seek-video]") : null;
    if (link && seek(link)) { event.preventDefault(); }
  });

  function momentItem(moment) {
    var item = document.createElement("li");
    item.className = "moment";
    var link = document.createElement("a");
    link.className = "moment-link";
    link.href = moment.href;
    var title = document.createElement("span");
    title.className = "moment-title";
    title.textContent = moment.title;
    link.appendChild(title);
    if (moment.clock) {
      var times = document.createElement("span");
      times.className = "moment-times";
      times.textContent = " " + moment.clock;
      var at = document.createElement("span");
      at.className = "visually-hidden";
      at.textContent = " at";
      link.appendChild(at);
      link.appendChild(times);
    }
    if (moment.seekable && moment.start !== null) {
      link.setAttribute("data-seek-video", moment.video);
      link.setAttribute("data-seek", String(moment.start));
    }
    item.appendChild(link);
    if (!moment.seekable) {
      var gone = document.createElement("small");
      gone.textContent = " (its stored copy was removed: it no longer plays here)";
      item.appendChild(gone);
    }
    if (moment.text) {
      var said = document.createElement("q");
      said.className = "moment-line";
      said.textContent = moment.text;
      item.appendChild(document.createTextNode(" "));
      item.appendChild(said);
    }
    return item;
  }

  function newTurn(form, question) {
    var template = document.getElementById("ask-turn");
    var turn = template.content.firstElementChild.cloneNode(true);
    turn.querySelector("[data-question]").textContent = question;
    var turns = document.querySelector("[data-ask-turns]");
    turns.appendChild(turn);
    return {
      status: turn.querySelector("[data-status]"),
      answer: turn.querySelector("[data-answer]"),
      moments: turn.querySelector("[data-moments]"),
      error: turn.querySelector("[data-error]"),
      open: turn.querySelector("[data-open]")
    };
  }

  function keepConversation(form, event, turn) {
    var field = form.querySelector("input[name=conversation]");
    if (!field) {
      field = document.createElement("input");
      field.type = "hidden";
      field.name = "conversation";
      form.appendChild(field);
    }
    field.value = event.conversation;  // follow-up questions continue it (its session at memories.ai)
    Array.prototype.forEach.call(form.querySelectorAll("input[name=video]"), function (input) { input.remove(); });
    if (window.location.pathname !== event.url) {
      turn.open.querySelector("a").href = event.url;
      turn.open.hidden = false;
    }
    var label = form.querySelector("label[for=ask-question]");
    if (label) { label.textContent = "Ask a follow-up question"; }
  }

  function handle(form, turn, event) {
    if (event.type === "started") {
      keepConversation(form, event, turn);
      turn.status.textContent = "memories.ai is answering…";
    } else if (event.type === "thinking") {
      turn.status.textContent = "memories.ai is answering: " + event.title;
    } else if (event.type === "content") {
      turn.answer.appendChild(document.createTextNode(event.text));
    } else if (event.type === "moments") {
      event.moments.forEach(function (moment) { turn.moments.appendChild(momentItem(moment)); });
      turn.moments.hidden = false;
    } else if (event.type === "done") {
      turn.status.textContent = "Answered.";
      return true;
    } else if (event.type === "error") {
      turn.status.textContent = "";
      turn.error.textContent = (turn.answer.textContent ? "The answer stopped before it was complete: "
                                                         : "No answer: ") + event.message;
      turn.error.hidden = false;
      return true;
    }
    return false;
  }

  function events(buffer) {  // the complete events of `buffer`, and what is left of it
    var found = [];
    var parts = buffer.split("\n\n");
    var rest = parts.pop();
    parts.forEach(function (block) {
      var data = block.split("\n").filter(function (line) { return line.indexOf("data:") === 0; })
        .map(function (line) { return line.slice(5).replace(/^ /, ""); }).join("\n");
      if (data) {
        try { found.push(JSON.parse(data)); } catch (ignored) { /* not an event of ours */ }
      }
    });
    return { events: found, rest: rest };
  }

  function read(form, turn, response) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    var ended = false;
    function next() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          if (!ended) { handle(form, turn, { type: "error", message: "the connection broke during the answer" }); }
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        var parsed = events(buffer);
        buffer = parsed.rest;
        parsed.events.forEach(function (event) { ended = handle(form, turn, event) || ended; });
        return next();
      });
    }
    return next();
  }

  function refused(form, turn, response) {  // resolves to the seconds to wait before asking again (0: none)
    return response.json().then(function (body) {
      turn.status.textContent = "";
      turn.error.textContent = body.message || "The question could not be asked.";
      turn.error.hidden = false;
      if (body.conversation) {  // memories.ai refused it, and the conversation keeps it: ask again in it
        keepConversation(form, body, turn);
      }
      var seconds = parseInt(body.retry_after, 10);
      return isNaN(seconds) || seconds < 1 || seconds > 600 ? 0 : seconds;
    }, function () {
      turn.status.textContent = "";
      turn.error.textContent = response.status === 403
        ? "The question could not be asked: the page is out of date (or you were signed out). Reload it and ask again."
        : "The question could not be asked (the portal answered " + response.status + ").";
      turn.error.hidden = false;
      return 0;
    });
  }

  function countDown(turn, button, seconds) {  // the Ask button comes back when the wait is over
    var until = Date.now() + seconds * 1000;  // from the clock: a hidden tab's timers run late
    function tick() {
      var left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) {
        turn.status.textContent = "You can ask again now.";
        button.disabled = false;
        return;
      }
      turn.status.textContent = "You can ask again in " + left + " s.";
      window.setTimeout(tick, 1000);
    }
    tick();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-ask") || !window.fetch || !window.TextDecoder) { return; }
    event.preventDefault();
    var box = form.querySelector("textarea[name=question]");
    var question = box.value.trim();
    if (!question) { box.focus(); return; }
    var button = form.querySelector("button[type=submit]");
    var turn = newTurn(form, question);
    turn.status.textContent = "Sending your question…";
    var body = new FormData(form);
    button.disabled = true;
    box.value = "";
    fetch(form.action, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { Accept: "text/event-stream", "X-CSRFToken": form.querySelector("input[name=csrfmiddlewaretoken]").value }
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (response.ok && type.indexOf("text/event-stream") === 0 && response.body) { return read(form, turn, response); }
      return refused(form, turn, response).then(function (wait) {
        box.value = question;  // nothing lost: ask it again
        return wait;
      });
    }).catch(function () {
      handle(form, turn, { type: "error", message: "the portal could not be reached" });
      box.value = box.value || question;
    }).then(function (wait) {
      if (wait) { countDown(turn, button, wait); } else { button.disabled = false; }
      box.focus();
    });
  });
})();
