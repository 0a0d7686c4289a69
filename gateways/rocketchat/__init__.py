"""The Rocket.Chat adapter (``type: rocketchat``): Rocket.Chat rooms, threads and DMs as chat
scopes, over its realtime API (DDP over WebSocket) and REST API, on aiohttp.

``RocketChatGateway`` is the protocol server and ``RocketChatGatewayOptions`` its YAML
options (``docs/rocketchat.md``). Inside: ``gateway`` (sessions, catch-up, sending), ``ddp``
(the realtime API's DDP session), ``rest`` (the REST calls), ``inbound`` (messages to chat
events), ``events`` (parsing), ``ledger`` (what was handled, per room) and ``options``. The
wire test server is ``gateways.testing.rocketchat.RocketChatTestServer``.
"""

from __future__ import annotations

from gateways.rocketchat.gateway import RocketChatGateway
from gateways.rocketchat.options import RocketChatGatewayOptions

__all__ = ["RocketChatGateway", "RocketChatGatewayOptions"]
