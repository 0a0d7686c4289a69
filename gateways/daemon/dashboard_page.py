"""The dashboard's page, rendered on the server (``static/dashboard.html`` filled in), so
that it reads without JavaScript; ``static/dashboard.js`` then keeps it live with the same
texts. Every value is escaped as HTML text.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from string import Template
from typing import Any

__all__ = ["iso", "render_page", "store_text"]


def render_page(template: Template, snapshot: dict[str, Any]) -> str:
    """The dashboard page with ``snapshot`` (``Dashboard.snapshot``) filled in, every value
    escaped as HTML text.

    Args:
        template: ``static/dashboard.html`` as a ``string.Template`` (``$gateway_rows``...).
        snapshot: What to show.

    Raises:
        KeyError: The template names a placeholder this function does not fill.
    """
    totals = snapshot["totals"]
    errors = snapshot["errors"]
    return template.substitute(
        updated=iso(snapshot["time"]),
        gateway_rows="".join(_gateway_row(row) for row in snapshot["gateways"]),
        total_gateways=totals["gateways"],
        total_connected=totals["connected"],
        total_scopes=totals["scopes"],
        total_rate=f"{totals['events_per_second']:.1f}",
        total_denied=totals["denied_commands"],
        error_items="".join(_error_item(entry) for entry in errors),
        errors_total=snapshot["errors_total"],
        errors_capacity=snapshot["errors_capacity"],
        no_errors=" hidden" if errors else "",
        **_store_fields(snapshot["state_store"]),
    )


def _store_fields(store: dict[str, Any] | None) -> dict[str, str]:
    """The page's state store card: hidden without a store."""
    if store is None:
        return {"store_hidden": " hidden", "store_up": "", "store_text": ""}
    return {
        "store_hidden": "",
        "store_up": "true" if store["up"] else "false",
        "store_text": html.escape(store_text(store)),
    }


def store_text(store: dict[str, Any]) -> str:
    """``"sqlite: up"`` or ``"redis: unavailable: no answer within 1 s"``; the page's script
    writes the same (``static/dashboard.js``)."""
    if store["up"]:
        return f"{store['backend']}: up"
    return f"{store['backend']}: unavailable: {store['problem']}"


def _gateway_row(row: dict[str, Any]) -> str:
    state = "connected" if row["connected"] else "disconnected"
    cells = [
        ("name", row["name"]),
        ("protocol", row["protocol"]),
        ("state", state),
        ("scopes", row["scopes"]),
        ("events_per_second", f"{row['events_per_second']:.1f}"),
        ("events_received", row["events_received"]),
        ("messages_sent", row["messages_sent"]),
        ("denied_commands", row["denied_commands"]),
    ]
    tds = "".join(
        f'<td data-field="{field}"'
        + (f' data-connected="{str(row["connected"]).lower()}"' if field == "state" else "")
        + f">{html.escape(str(value))}</td>"
        for field, value in cells
    )
    return f'<tr data-gateway="{html.escape(row["name"])}">{tds}</tr>\n'


def _error_item(entry: dict[str, Any]) -> str:
    stamp = iso(entry["time"])
    parts = [
        f'<time datetime="{stamp}">{stamp}</time>',
        f'<span class="level">{html.escape(entry["level"])}</span>',
        f'<span class="logger">{html.escape(entry["logger"])}</span>',
    ]
    if entry["gateway"] is not None:
        parts.append(f'<span class="gateway">{html.escape(entry["gateway"])}</span>')
    parts.append(f'<pre class="message">{html.escape(entry["message"])}</pre>')
    return f"<li>{' '.join(parts)}</li>\n"


def iso(seconds: float) -> str:
    """``2024-05-01T12:00:03.123Z``, as JavaScript's ``Date.toISOString()`` writes it."""
    stamp = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
