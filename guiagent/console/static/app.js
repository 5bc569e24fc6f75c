// guiagent console: plain JS, no build step. Model and page text is only ever set as textContent.
(function () {
  "use strict";

  var state = { runId: null, source: null, run: null, imageId: null, imageFile: null };

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function api(method, path, body) {
    var options = { method: method, headers: {} };
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(path, options).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || response.statusText);
        return data;
      });
    });
  }

  function shot(src, width, height, marker) {
    var box = el("div", "shot");
    var img = el("img");
    img.src = src;
    img.alt = "screen";
    box.appendChild(img);
    if (marker && width && height) {
      var dot = el("span", "marker");
      dot.style.left = (marker[0] / width * 100) + "%";
      dot.style.top = (marker[1] / height * 100) + "%";
      box.appendChild(dot);
    }
    return box;
  }

  function frameUrl(key) { return "/api/runs/" + state.runId + "/frames/" + key + ".jpg"; }

  // --- the watched run -------------------------------------------------------------------

  function setStatus(status, paused, waiting) {
    var text = status;
    if (paused && (status === "running" || status === "starting")) {
      text = waiting ? "paused (between two actions)" : "pausing after this action…";
    }
    $("run-status").textContent = text;
    var active = status === "running" || status === "starting";
    var isReplay = state.run && state.run.run_kind === "replay";
    $("pause").disabled = !active || paused || isReplay;
    $("resume").disabled = !active || !paused || isReplay;
    $("stop").disabled = !active;
  }

  function stepCard(index) {
    var card = $("step-" + index);
    if (card) return card;
    card = el("article", "step");
    card.id = "step-" + index;
    card.appendChild(el("h3", null, "Step " + index));
    var frame = el("div", "frame");
    card.appendChild(frame);
    var reasoning = el("div", "reasoning");
    card.appendChild(reasoning);
    card.appendChild(el("p", "content"));
    card.appendChild(el("p", "action"));
    card.appendChild(el("p", "timing muted"));
    var steps = $("steps");
    steps.insertBefore(card, steps.firstChild);  // newest first
    return card;
  }

  function part(card, cls) { return card.querySelector("." + cls); }

  function describeAction(action) {
    if (!action) return "";
    var args = Object.keys(action).filter(function (k) { return k !== "action"; }).map(function (k) {
      return k + "=" + JSON.stringify(action[k]);
    });
    return action.action + "(" + args.join(", ") + ")";
  }

  var handlers = {
    run: function (e) {
      state.run = e;
      $("run-id").textContent = e.id;
      $("run-task").textContent = (e.run_kind === "replay" ? "Replay: " : "Task: ") + e.task;
      setStatus(e.status, e.paused, e.waiting);
    },
    state: function (e) {
      setStatus(e.status, e.paused, e.waiting);
      refreshRunsSoon();
    },
    step: function (e) {
      refreshRunsSoon();
      var card = stepCard(e.index);
      card.dataset.width = e.width;
      card.dataset.height = e.height;
      var frame = part(card, "frame");
      frame.textContent = "";
      frame.appendChild(shot(frameUrl(e.frame), e.width, e.height, null));
      if (e.url) part(card, "timing").textContent = e.url;
    },
    delta: function (e) {
      var card = stepCard(e.index);
      var target = part(card, e.part === "reasoning" ? "reasoning" : "content");
      target.textContent += e.text;
    },
    reply: function (e) {
      var card = stepCard(e.index);
      if (e.reasoning) part(card, "reasoning").textContent = e.reasoning;
      part(card, "action").textContent = e.problem ? "invalid reply: " + e.problem : (e.action || "");
    },
    done: function (e) {
      var card = stepCard(e.index);
      var action = part(card, "action");
      action.textContent = describeAction(e.action) + " → " + e.outcome;
      action.className = "action outcome-" + e.outcome;
      var timings = Object.keys(e.timings || {}).map(function (k) { return k + " " + e.timings[k] + " ms"; });
      part(card, "timing").textContent = timings.join(" · ");
      var box = card.querySelector(".shot");
      if (box && e.marker && !box.querySelector(".marker")) {
        var dot = el("span", "marker");
        dot.style.left = (e.marker[0] / card.dataset.width * 100) + "%";
        dot.style.top = (e.marker[1] / card.dataset.height * 100) + "%";
        box.appendChild(dot);
      }
    },
    ask: function (e) {
      if ($("approval-" + e.id)) return;
      var card = el("div", "approval");
      card.id = "approval-" + e.id;
      card.appendChild(el("p", null, "Step " + e.index + " wants to: " + e.action));
      card.appendChild(el("p", "muted", "Why asked: " + e.reason + (e.rule ? " (rule " + e.rule + ")" : "")));
      if (e.frame) card.appendChild(shot(frameUrl(e.frame), e.width, e.height, e.marker));
      var row = el("div", "row");
      var yes = el("button", "approve", "Approve");
      yes.type = "button";
      var no = el("button", "deny", "Deny");
      no.type = "button";
      function answer(approve) {
        yes.disabled = no.disabled = true;
        api("POST", "/api/runs/" + state.runId + "/approvals/" + e.id, { approve: approve })
          .catch(function (err) { card.appendChild(el("p", "message", err.message)); });
      }
      yes.addEventListener("click", function () { answer(true); });
      no.addEventListener("click", function () { answer(false); });
      row.appendChild(yes);
      row.appendChild(no);
      card.appendChild(row);
      $("approvals").appendChild(card);
      $("no-approvals").hidden = true;
    },
    answered: function (e) {
      var card = $("approval-" + e.id);
      if (card) card.remove();
      $("no-approvals").hidden = $("approvals").children.length > 0;
    },
    replay_step: function (e) {
      var card = stepCard(e.index);
      part(card, "action").textContent = describeAction(e.action) + " → " + e.status + (e.message ? " (" + e.message + ")" : "");
    },
    error: function (e) { $("run-result").textContent = "Error: " + e.message; },
    end: function (e) {
      var text = "Ended: " + e.status;
      if (e.answer) text += " — " + e.answer;
      if (e.stop_reason) text += " (" + e.stop_reason + ")";
      $("run-result").textContent = text;
      setStatus(e.status, false, false);
      loadRecordings();
      loadRuns();
    },
    eof: function () {
      if (state.source) state.source.close();
      state.source = null;
      $("conn").textContent = "";
    },
  };

  function watch(runId) {
    if (state.source) state.source.close();
    state.runId = runId;
    state.run = null;
    $("steps").textContent = "";
    $("approvals").textContent = "";
    $("no-approvals").hidden = false;
    $("run-result").textContent = "";
    if (location.hash !== "#run=" + runId) history.replaceState(null, "", "#run=" + runId);
    var source = new EventSource("/api/runs/" + runId + "/events");
    state.source = source;
    $("conn").textContent = "watching run " + runId;
    source.onmessage = function (message) {
      var event = JSON.parse(message.data);
      var handler = handlers[event.kind];
      if (handler) handler(event);
    };
  }

  function control(verb) {
    if (!state.runId) return;
    api("POST", "/api/runs/" + state.runId + "/" + verb).catch(function (err) {
      $("run-result").textContent = err.message;
    });
  }

  // --- lists -------------------------------------------------------------------------------

  function loadRuns() {
    return api("GET", "/api/runs").then(function (runs) {
      var list = $("run-list");
      list.textContent = "";
      runs.forEach(function (run) {
        var li = el("li");
        var link = el("a", null, run.task);
        link.href = "#run=" + run.id;
        link.addEventListener("click", function (ev) { ev.preventDefault(); watch(run.id); });
        li.appendChild(link);
        li.appendChild(el("span", "muted", " " + run.status + ", " + run.steps + " steps"));
        list.appendChild(li);
      });
    });
  }

  var runsTimer = null;
  function refreshRunsSoon() {  // at most one list refresh per second however fast events come
    if (runsTimer !== null) return;
    runsTimer = setTimeout(function () { runsTimer = null; loadRuns(); }, 1000);
  }

  function loadRecordings() {
    return api("GET", "/api/recordings").then(function (recordings) {
      var list = $("recordings");
      list.textContent = "";
      recordings.forEach(function (rec) {
        var li = el("li", "recording");
        li.dataset.name = rec.name;
        li.appendChild(el("div", null, rec.task || rec.name));
        li.appendChild(el("div", "muted", rec.name + " · " + rec.status + " · " + (rec.steps || 0) + " steps"));
        var report = el("a", "report", "Report");
        report.href = "/recordings/" + encodeURIComponent(rec.name) + "/report.html";
        report.target = "_blank";
        report.rel = "noopener";
        li.appendChild(report);
        li.appendChild(document.createTextNode(" "));
        var replay = el("button", "replay", "Replay");
        replay.type = "button";
        replay.addEventListener("click", function () {
          api("POST", "/api/recordings/" + encodeURIComponent(rec.name) + "/replay", { mode: "strict" })
            .then(function (run) { watch(run.id); loadRuns(); })
            .catch(function (err) { li.appendChild(el("p", "message", err.message)); });
        });
        li.appendChild(replay);
        list.appendChild(li);
      });
    });
  }

  // --- forms -------------------------------------------------------------------------------

  $("run-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("form-message").textContent = "";
    var spec = {
      task: $("task").value,
      env: $("env").value,
      start_url: $("start-url").value,
      display: $("display").value,
      model_url: $("model-url").value,
      policy_path: $("policy").value,
      max_steps: parseInt($("max-steps").value, 10) || 30,
      dry_run: $("dry-run").checked,
      record: $("record").checked,
    };
    api("POST", "/api/runs", spec)
      .then(function (run) { watch(run.id); loadRuns(); })
      .catch(function (err) { $("form-message").textContent = err.message; });
  });

  function uploadIfNeeded() {
    var file = $("ask-image").files[0];
    if (!file) return Promise.resolve(null);
    if (file === state.imageFile && state.imageId) return Promise.resolve(state.imageId);
    var form = new FormData();
    form.append("image", file);
    return api("POST", "/api/images", form).then(function (image) {
      state.imageFile = file;
      state.imageId = image.id;
      return image.id;
    });
  }

  $("ask-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var question = $("question").value.trim();
    if (!question) return;
    var item = el("li");
    item.appendChild(el("div", "question", "Q: " + question));
    var answer = el("div", "answer muted", "…");
    item.appendChild(answer);
    $("answers").appendChild(item);
    $("question").value = "";
    uploadIfNeeded().then(function (imageId) {
      var body = { question: question, model_url: $("model-url").value || null, local: $("ask-local").checked };
      if (imageId) body.image_id = imageId;
      else if (state.runId) body.run_id = state.runId;
      return api("POST", "/api/ask", body);
    }).then(function (reply) {
      answer.textContent = "A: " + reply.answer;
      answer.className = "answer source-" + reply.source;
    }).catch(function (err) {
      answer.textContent = "Could not answer: " + err.message;
      answer.className = "answer message";
    });
  });

  $("pause").addEventListener("click", function () { control("pause"); });
  $("resume").addEventListener("click", function () { control("resume"); });
  $("stop").addEventListener("click", function () { control("stop"); });
  $("refresh-recordings").addEventListener("click", loadRecordings);

  api("GET", "/api/info").then(function (info) {
    if (info.default_model_url && !$("model-url").value) $("model-url").value = info.default_model_url;
  });
  loadRuns();
  loadRecordings();
  var match = /^#run=([0-9a-f]+)$/.exec(location.hash);
  if (match) watch(match[1]);
})();
