// The full-page chat (GET /): a token in the address's fragment (#token=...) is kept in
// sessionStorage and taken out of the address bar; then the chat is mounted on #chat.
(function () {
  "use strict";
  var TOKEN_KEY = "asgi-webchat:token";
  var match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  var root = document.getElementById("chat");
  window.AsgiWebChat.mount(root, {
    wsUrl: (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws",
    storage: sessionStorage,
    storageKey: "asgi-webchat",
    token: sessionStorage.getItem(TOKEN_KEY),
    title: root.getAttribute("data-title") || document.title
  });
})();
