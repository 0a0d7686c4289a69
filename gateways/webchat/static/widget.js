// The embeddable widget (GET /widget.js). A host site adds, on any page:
//   <script src="https://chat.example.com/widget.js" data-title="Help" data-token="..." defer></script>
// It opens a chat box (a launcher button and a panel, in a shadow root, styled by this
// gateway's chat.css) whose WebSocket goes to this gateway. Its session is kept in the host
// page's sessionStorage, under a key of this gateway's address.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.AsgiWebChatWidget) { return; }
  var base = new URL(".", script.src);
  var wsUrl = (base.protocol === "https:" ? "wss://" : "ws://") + base.host + base.pathname + "ws";
  var storageKey = "asgi-webchat:" + base.href;
  var title = script.getAttribute("data-title") || "Chat";
  var token = script.getAttribute("data-token") || null;

  var host = document.createElement("div");
  host.className = "asgi-webchat-widget";
  var shadow = host.attachShadow({ mode: "open" });
  var css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = new URL("static/chat.css", base).href;
  shadow.appendChild(css);
  var launcher = document.createElement("button");
  launcher.type = "button";
  launcher.className = "awc-launcher";
  launcher.textContent = title;
  launcher.setAttribute("aria-expanded", "false");
  var panel = document.createElement("div");
  panel.className = "awc-panel";
  panel.hidden = true;
  shadow.appendChild(panel);
  shadow.appendChild(launcher);
  var mounted = false;

  function mount() {
    if (mounted) { return; }
    mounted = true;
    function go() {
      window.AsgiWebChat.mount(panel, {
        wsUrl: wsUrl, storage: sessionStorage, storageKey: storageKey, token: token, title: title
      });
    }
    if (window.AsgiWebChat) { go(); return; }
    var code = document.createElement("script");
    code.src = new URL("static/chat.js", base).href;
    code.onload = go;
    document.head.appendChild(code);
  }

  function show(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    sessionStorage.setItem(storageKey + ":open", open ? "1" : "");
    if (open) { mount(); }
  }

  launcher.addEventListener("click", function () { show(panel.hidden); });
  window.AsgiWebChatWidget = { open: function () { show(true); }, close: function () { show(false); } };
  function attach() {
    document.body.appendChild(host);
    if (sessionStorage.getItem(storageKey + ":open")) { show(true); }
  }
  if (document.body) { attach(); } else { document.addEventListener("DOMContentLoaded", attach); }
})();
