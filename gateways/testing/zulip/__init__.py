"""A local server speaking Zulip's REST API (https://zulip.com/api/), for tests of Zulip bots
that cannot reach a Zulip server: ``ZulipTestServer``. The official ``zulip`` bindings and the
Zulip gateway run against it unchanged, pointed at ``server.site``.
"""

from __future__ import annotations

from gateways.testing.zulip.realm import ApiCall, EventQueue, SentMessage, ZulipError
from gateways.testing.zulip.server import MAX_MESSAGE_LENGTH, ZulipTestServer

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "ApiCall",
    "EventQueue",
    "SentMessage",
    "ZulipError",
    "ZulipTestServer",
]
