// The asgi-gateway dashboard, kept live: each snapshot of the event stream
// (GET dashboard/events, Server-Sent Events) redraws the page the server rendered.
// Text only (textContent): nothing from the server is ever parsed as HTML.
"use strict";

(function () {
  const status = document.getElementById("status");
  const statusText = document.getElementById("status-text");
  const updated = document.getElementById("updated");
  const rows = document.querySelector("#gateways tbody");
  const errors = document.getElementById("errors");
  const noErrors = document.getElementById("no-errors");
  const errorsTotal = document.getElementById("errors-total");
  const errorsCapacity = document.getElementById("errors-capacity");
  const storeCard = document.getElementById("store-card");
  const store = document.getElementById("state-store");

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function iso(seconds) {
    return new Date(seconds * 1000).toISOString();
  }

  function gatewayRow(gateway) {
    const row = document.createElement("tr");
    row.dataset.gateway = gateway.name;
    const cells = [
      ["name", gateway.name],
      ["protocol", gateway.protocol],
      ["state", gateway.connected ? "connected" : "disconnected"],
      ["scopes", gateway.scopes],
      ["events_per_second", gateway.events_per_second.toFixed(1)],
      ["events_received", gateway.events_received],
      ["messages_sent", gateway.messages_sent],
      ["denied_commands", gateway.denied_commands],
    ];
    for (const [field, value] of cells) {
      const cell = element("td", value);
      cell.dataset.field = field;
      if (field === "state") cell.dataset.connected = String(gateway.connected);
      row.append(cell);
    }
    return row;
  }

  function errorItem(entry) {
    const item = document.createElement("li");
    const stamp = iso(entry.time);
    const time = element("time", stamp);
    time.dateTime = stamp;
    const parts = [time, element("span", entry.level, "level"), element("span", entry.logger, "logger")];
    if (entry.gateway !== null) parts.push(element("span", entry.gateway, "gateway"));
    parts.push(element("pre", entry.message, "message"));
    parts.forEach((part, index) => {
      if (index > 0) item.append(" ");
      item.append(part);
    });
    return item;
  }

  // As the server writes it (dashboard_page.py, store_text).
  function storeText(state) {
    if (state.up) return state.backend + ": up";
    return state.backend + ": unavailable: " + state.problem;
  }

  function renderStore(state) {
    storeCard.hidden = state === null;
    if (state === null) return;
    store.textContent = storeText(state);
    store.dataset.up = String(state.up === true);
  }

  function render(snapshot) {
    updated.textContent = iso(snapshot.time);
    updated.dateTime = updated.textContent;
    rows.replaceChildren(...snapshot.gateways.map(gatewayRow));
    for (const node of document.querySelectorAll("[data-total]")) {
      const value = snapshot.totals[node.dataset.total];
      node.textContent = node.dataset.total === "events_per_second" ? value.toFixed(1) : String(value);
    }
    errors.replaceChildren(...snapshot.errors.map(errorItem));
    noErrors.hidden = snapshot.errors.length > 0;
    errorsTotal.textContent = String(snapshot.errors_total);
    errorsCapacity.textContent = String(snapshot.errors_capacity);
    renderStore(snapshot.state_store);
  }

  function setState(state, text) {
    status.dataset.state = state;
    statusText.textContent = text;
  }

  if (typeof EventSource !== "function") return; // the server's snapshot stays
  const source = new EventSource("dashboard/events");
  source.onopen = () => setState("live", "Live");
  source.onmessage = (event) => {
    render(JSON.parse(event.data));
    setState("live", "Live");
  };
  // The browser reconnects by itself (the stream's retry: 2 s); say so meanwhile.
  source.onerror = () => setState("reconnecting", "Reconnecting; last update");
})();
