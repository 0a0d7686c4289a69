"""A Rocket.Chat wire test server, for Rocket.Chat bots' tests: ``RocketChatTestServer``
(``gateways.testing.rocketchat.server``) speaks Rocket.Chat's REST API and its realtime API
(DDP over WebSocket), with faults on demand (cut connections, refused reconnections, failed
sends, malformed frames). It needs aiohttp (a dependency of asgi-gateway itself).
"""

from __future__ import annotations

from gateways.testing.rocketchat.server import (
    Reaction,
    RealtimeSession,
    RocketChatTestServer,
    World,
)

__all__ = ["Reaction", "RealtimeSession", "RocketChatTestServer", "World"]
