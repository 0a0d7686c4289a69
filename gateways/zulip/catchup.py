"""Fetching what a lost event queue missed, for ``ZulipGateway``.

When Zulip deleted the gateway's event queue (``BAD_EVENT_QUEUE_ID``, or one gone while
the daemon was down), the messages that arrived since are in no queue. Zulip's answer is
to fetch them (https://zulip.com/api/real-time-events, "Handling of lost events"): after a
new ``POST /register``, ``GET /messages`` (https://zulip.com/api/get-messages) with
``anchor`` the new queue's ``max_message_id`` and ``num_before`` up to ``limit`` gives the
latest messages the bot can see; those after the ledger's message mark and not delivered
yet are delivered, oldest first. Beyond ``limit``, the oldest are skipped, with a warning.
"""

from __future__ import annotations

import logging
from typing import Any

from gateways.zulip.client import ZulipApi
from gateways.zulip.inbound import ZulipInbound
from gateways.zulip.ledger import Marks

__all__ = ["catch_up"]

logger = logging.getLogger("gateways.zulip")


async def catch_up(
    api: ZulipApi, inbound: ZulipInbound, marks: Marks, upto: int | None, limit: int, name: str
) -> None:
    """Deliver the messages after ``marks.mark`` up to ``upto`` not delivered yet (none on
    a first start, without a mark), at most the latest ``limit``.

    Args:
        api: The REST client.
        inbound: Delivers each message (``deliver_message``: seen ones are skipped).
        marks: The ledger's message marks.
        upto: The new queue's ``max_message_id`` (``None``: the newest message).
        limit: ``catch_up``, most messages fetched.
        name: The gateway's name, for the log.

    Raises:
        ZulipApiError, ZulipUnreachable: The request failed.
    """
    mark = marks.mark
    if mark is None or limit == 0 or (upto is not None and upto <= mark):
        return
    params: dict[str, Any] = {
        "anchor": "newest" if upto is None else str(upto),
        "include_anchor": True,
        "num_before": limit - 1,  # and the anchor itself
        "num_after": 0,
        "narrow": [],
        "apply_markdown": False,
    }
    answer = await api.call("GET", "messages", params)
    found = answer.get("messages")
    messages = [m for m in found if isinstance(m, dict)] if isinstance(found, list) else []
    fresh = [m for m in messages if not isinstance(m.get("id"), int) or m["id"] > mark]
    if len(fresh) == len(messages) and messages and not answer.get("found_oldest", False):
        logger.warning(
            "Gateway %r: more than catch_up (%d) messages arrived while the event queue was "
            "lost; the older ones were skipped",
            name,
            limit,
        )
    for message in fresh:
        await inbound.deliver_message(None, message, message.get("flags"))
