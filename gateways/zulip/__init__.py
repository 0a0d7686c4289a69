"""The Zulip adapter (``type: zulip``): Zulip streams, topics and direct messages as chat
scopes, on Zulip's REST API with aiohttp.

``ZulipGateway`` is the protocol server and ``ZulipGatewayOptions`` its YAML options
(``docs/zulip.md``). Inside: ``gateway`` (the event queue: register, long poll, re-register
and catch up), ``client`` (the REST calls), ``inbound`` (events to chat events),
``outbound`` (sending, 429 retries), ``ledger`` (what was handled: at least once, never
twice) and ``options``. The wire test server is ``gateways.testing.zulip.ZulipTestServer``.
"""

from __future__ import annotations

from gateways.zulip.gateway import ZulipGateway
from gateways.zulip.options import ZulipGatewayOptions

__all__ = ["ZulipGateway", "ZulipGatewayOptions"]
