// The web chat client: window.AsgiWebChat.mount(root, options) builds a chat box in root (an
// element or a shadow root) and speaks the gateway's wire protocol (docs/webchat.md).
// Text is only ever put in the page with textContent; Markdown answers are built from
// elements (code, strong, em, links to http(s) only), never from HTML.
(function () {
  "use strict";
  if (window.AsgiWebChat) { return; }
  var KEEP = 200; // entries of the transcript kept in storage
  var FINAL = { 4400: "The chat refused this page.", 4401: "Your sign-in was refused or has expired.",
    4409: "This chat is open in another tab." };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function inline(parent, text) {
    var pattern = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\n]+\*|_[^_\n]+_)|\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g;
    var last = 0, m;
    while ((m = pattern.exec(text)) !== null) {
      if (m.index > last) { parent.appendChild(document.createTextNode(text.slice(last, m.index))); }
      if (m[1]) { parent.appendChild(el("code", "", m[1].slice(1, -1))); }
      else if (m[2]) { parent.appendChild(el("strong", "", m[2].slice(2, -2))); }
      else if (m[3]) { parent.appendChild(el("em", "", m[3].slice(1, -1))); }
      else {
        var link = el("a", "", m[4]);
        link.href = m[5];
        link.rel = "noopener noreferrer nofollow";
        link.target = "_blank";
        parent.appendChild(link);
      }
      last = pattern.lastIndex;
    }
    if (last < text.length) { parent.appendChild(document.createTextNode(text.slice(last))); }
  }

  function render(parent, text, format) {
    if (format !== "markdown") { parent.textContent = text; return; }
    text.split("\n").forEach(function (line, i) {
      if (i) { parent.appendChild(document.createElement("br")); }
      inline(parent, line);
    });
  }

  function mount(root, options) {
    var key = options.storageKey, storage = options.storage;
    var state;
    try { state = JSON.parse(storage.getItem(key) || "null"); } catch (e) { state = null; }
    if (!state || typeof state !== "object") { state = {}; }
    state.session = state.session || null;
    state.seq = state.seq || 0;
    state.transcript = state.transcript || [];
    state.pending = state.pending || [];
    state.next = state.next || 0;
    var limits = { max_message_bytes: 4096 };
    var ws = null, backoff = 500, stopped = false, typingTimer = null, retryTimer = null;

    var box = el("section", "awc");
    var head = el("header", "awc-head");
    head.appendChild(el("span", "awc-title", options.title || "Chat"));
    var status = el("span", "awc-status", "connecting");
    head.appendChild(status);
    var log = el("ol", "awc-log");
    log.setAttribute("aria-live", "polite");
    var typing = el("div", "awc-typing", "typing…");
    typing.hidden = true;
    var form = el("form", "awc-form");
    var input = el("textarea", "awc-input");
    input.rows = 2;
    input.placeholder = "Write a message";
    input.setAttribute("aria-label", "Message");
    var button = el("button", "awc-send", "Send");
    button.type = "submit";
    form.appendChild(input);
    form.appendChild(button);
    box.appendChild(head);
    box.appendChild(log);
    box.appendChild(typing);
    box.appendChild(form);
    root.appendChild(box);

    function save() {
      state.transcript = state.transcript.slice(-KEEP);
      try { storage.setItem(key, JSON.stringify(state)); } catch (e) { /* storage full: kept in memory */ }
    }

    function entryNode(entry) {
      var item = el("li", "awc-msg awc-" + entry.who);
      item.setAttribute("data-id", entry.id || "");
      var bubble = el("div", "awc-text");
      render(bubble, entry.text, entry.format);
      item.appendChild(bubble);
      var meta = el("div", "awc-meta");
      if (entry.who === "me") { meta.textContent = entry.status === "sent" ? "✓" : entry.status === "failed" ? "not sent" : "sending…"; }
      if (entry.reactions && entry.reactions.length) { meta.appendChild(el("span", "awc-reactions", " " + entry.reactions.join(" "))); }
      item.appendChild(meta);
      return item;
    }

    function redraw() {
      while (log.firstChild) { log.removeChild(log.firstChild); }
      state.transcript.forEach(function (entry) { log.appendChild(entryNode(entry)); });
      log.scrollTop = log.scrollHeight;
    }

    function add(entry) {
      state.transcript.push(entry);
      log.appendChild(entryNode(entry));
      log.scrollTop = log.scrollHeight;
      save();
    }

    function note(text) { add({ who: "note", text: text }); }

    function find(id) {
      for (var i = state.transcript.length - 1; i >= 0; i--) {
        if (state.transcript[i].id === id) { return state.transcript[i]; }
      }
      return null;
    }

    function transmit(frame) {
      if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(frame)); return true; }
      return false;
    }

    function flush() {
      state.pending.forEach(function (p) { transmit({ type: "message", id: p.id, text: p.text }); });
    }

    function settle(id, how) {
      state.pending = state.pending.filter(function (p) { return p.id !== id; });
      var entry = find(id);
      if (entry) { entry.status = how; }
      save();
      redraw();
    }

    function onFrame(frame) {
      if (frame.type === "welcome") {
        if (state.session && frame.session !== state.session && state.transcript.length) {
          note("A new conversation started.");
        }
        if (!frame.resumed) { state.seq = 0; }
        state.session = frame.session;
        state.conversation = frame.conversation;
        limits = frame.limits || limits;
        if (frame.dropped) { note(frame.dropped + " earlier answers were lost."); }
        status.textContent = "connected";
        backoff = 500;
        save();
        flush();
      } else if (frame.type === "message" || frame.type === "reaction") {
        if (typeof frame.seq !== "number" || frame.seq <= state.seq) { return; }
        state.seq = frame.seq;
        if (frame.type === "message") {
          typing.hidden = true;
          add({ who: "bot", id: frame.id, text: String(frame.text), format: frame.format });
        } else {
          var target = find(frame.message_id);
          if (target) {
            var list = (target.reactions || []).filter(function (r) { return r !== frame.reaction; });
            if (!frame.remove) { list.push(String(frame.reaction)); }
            target.reactions = list;
            save();
            redraw();
          }
        }
        transmit({ type: "ack", seq: state.seq });
      } else if (frame.type === "typing") {
        typing.hidden = false;
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.hidden = true; }, 5000);
      } else if (frame.type === "ack") {
        settle(frame.id, "sent");
      } else if (frame.type === "error") {
        if (frame.code === "rate_limited" || frame.code === "unavailable") {
          clearTimeout(retryTimer);
          retryTimer = setTimeout(flush, Math.max(500, (frame.retry_after || 1) * 1000));
        } else if (frame.code === "too_large") {
          note("That message is too long.");
        } else if (frame.code === "unauthorized" || frame.code === "busy") {
          status.textContent = frame.message;
        }
      }
    }

    function connect() {
      if (stopped) { return; }
      status.textContent = "connecting";
      ws = new WebSocket(options.wsUrl);
      ws.onopen = function () {
        ws.send(JSON.stringify({ type: "hello", session: state.session, ack: state.seq, token: options.token || null }));
      };
      ws.onmessage = function (event) {
        var frame;
        try { frame = JSON.parse(event.data); } catch (e) { return; }
        if (frame && typeof frame === "object") { onFrame(frame); }
      };
      ws.onclose = function (event) {
        ws = null;
        if (FINAL[event.code]) {
          stopped = true;
          status.textContent = "closed";
          note(FINAL[event.code]);
          return;
        }
        status.textContent = "reconnecting";
        setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 10000);
      };
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = input.value;
      if (!text.trim()) { return; }
      if (new TextEncoder().encode(JSON.stringify({ type: "message", id: "c0000000000000000000", text: text })).length > limits.max_message_bytes) {
        note("That message is too long.");
        return;
      }
      state.next += 1;
      var id = "c" + Date.now().toString(36) + "-" + state.next;
      state.pending.push({ id: id, text: text });
      add({ who: "me", id: id, text: text, status: "sending" });
      input.value = "";
      transmit({ type: "message", id: id, text: text });
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });

    redraw();
    connect();
    return { close: function () { stopped = true; if (ws) { ws.close(1000); } } };
  }

  window.AsgiWebChat = { mount: mount };
})();
