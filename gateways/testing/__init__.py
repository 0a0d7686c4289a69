"""Test kits for your own tests of gateways, bots and device code, as ours use them.

Real servers on free loopback ports, each a ``ServerProcess`` (``start``, ``stop``, ``kill``,
``pause``, ``restart`` on the same port, ``async with X.started()``):

- ``Mosquitto``: an MQTT broker (Debian package ``mosquitto``);
- ``RedisServer``: a ``redis-server`` for the Redis channel layer (``redis-server``);
- ``Ngircd``: an IRC server, optionally with TLS (``ngircd``);
- ``Synapse``: a Matrix homeserver (``matrix-synapse`` from PyPI, in its own venv), and
  ``MatrixHuman``, a matrix-nio client playing a person (needs the ``matrix`` extra);
- ``Prosody``: an XMPP server with a MUC service and a test CA (``prosody``), and
  ``XmppHuman``, a slixmpp client playing a person (needs the ``xmpp`` extra).

A wire test server, for a platform that cannot be reached from a test:

- ``SlackTestServer``: Slack's Web API, Socket Mode and signed Events API requests, for
  slack-bolt and slack_sdk unchanged (needs the ``slack`` extra); payload builders in
  ``gateways.testing.slack_payloads``;
- ``TelegramTestServer``: Telegram's Bot API (getUpdates long polling, webhooks with the
  secret token, sendMessage...), for aiogram unchanged (``gateways.testing.telegram``);
- ``DiscordTestServer``: Discord's REST API and gateway WebSocket (HELLO, IDENTIFY, RESUME,
  zlib-stream, 429s), for hikari unchanged (``gateways.testing.discord``);
- ``TeamsTestServer``: the Bot Framework for Microsoft Teams (OpenID keys, the token
  endpoint, the Bot Connector, signed activities POSTed to the bot, forged and expired
  tokens), for the Teams gateway unchanged (``gateways.testing.teams``);
- ``RocketChatTestServer``: Rocket.Chat's REST API and realtime API (DDP over WebSocket:
  login, ``stream-room-messages``, ``loadMissedMessages``), with cut connections and failed
  sends on demand, for the Rocket.Chat gateway unchanged (``gateways.testing.rocketchat``);
- ``MattermostTestServer``: Mattermost's REST API v4 and WebSocket (``hello``, ``seq``,
  resumes by ``connection_id`` / ``sequence_number``, 429s, cut answers), for any client
  (``gateways.testing.mattermost``);
- ``ZulipTestServer``: Zulip's REST API (event queues long polled, ``BAD_EVENT_QUEUE_ID``,
  ``GET /messages``, 429s, dropped polls), for the official ``zulip`` bindings and the
  Zulip gateway unchanged (``gateways.testing.zulip``).

A real browser for web pages: ``gateways.testing.browser.chromium()``, Debian's headless
Chromium under Playwright (needs the ``playwright`` package and the ``chromium`` package),
and ``PageWatch`` for the dialogs and console errors a page must not show.

And the conformance kit every adapter should pass, ``GatewayConformance`` with its
``ConformanceHarness`` (needs pytest and pytest-asyncio; ``docs/adapters.md`` shows each), and
``StateStoreConformance`` with its ``StateStoreHarness``, which every state store should pass
(``docs/state.md``).
The platform kits and the conformance kit are imported on first use, so
``import gateways.testing`` needs neither aiohttp, a platform's client library nor pytest.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from gateways.testing.mosquitto import Mosquitto
from gateways.testing.ngircd import Ngircd
from gateways.testing.processes import ServerProcess, accepts, find_binary, free_port
from gateways.testing.redis_server import RedisServer

if TYPE_CHECKING:
    from gateways.testing.conformance import (
        ConformanceHarness,
        GatewayConformance,
        TransportConformance,
    )
    from gateways.testing.discord import DiscordTestServer
    from gateways.testing.mattermost import MattermostTestServer
    from gateways.testing.prosody import Prosody, XmppHuman
    from gateways.testing.rocketchat import RocketChatTestServer
    from gateways.testing.slack_server import SlackTestServer
    from gateways.testing.state import StateStoreConformance, StateStoreHarness
    from gateways.testing.synapse import MatrixHuman, Synapse
    from gateways.testing.teams import TeamsTestServer
    from gateways.testing.telegram import TelegramTestServer
    from gateways.testing.zulip import ZulipTestServer

__all__ = [
    "ConformanceHarness",
    "DiscordTestServer",
    "GatewayConformance",
    "MatrixHuman",
    "MattermostTestServer",
    "Mosquitto",
    "Ngircd",
    "Prosody",
    "RedisServer",
    "RocketChatTestServer",
    "ServerProcess",
    "SlackTestServer",
    "StateStoreConformance",
    "StateStoreHarness",
    "Synapse",
    "TeamsTestServer",
    "TelegramTestServer",
    "TransportConformance",
    "XmppHuman",
    "ZulipTestServer",
    "accepts",
    "find_binary",
    "free_port",
]

#: Names imported on first use, and the module that holds each.
_LAZY = {
    "ConformanceHarness": "gateways.testing.conformance",
    "GatewayConformance": "gateways.testing.conformance",
    "TransportConformance": "gateways.testing.conformance",
    "SlackTestServer": "gateways.testing.slack_server",
    "TelegramTestServer": "gateways.testing.telegram",
    "DiscordTestServer": "gateways.testing.discord",
    "TeamsTestServer": "gateways.testing.teams",
    "RocketChatTestServer": "gateways.testing.rocketchat",
    "MattermostTestServer": "gateways.testing.mattermost",
    "ZulipTestServer": "gateways.testing.zulip",
    "Synapse": "gateways.testing.synapse",
    "MatrixHuman": "gateways.testing.synapse",
    "Prosody": "gateways.testing.prosody",
    "XmppHuman": "gateways.testing.prosody",
    "StateStoreConformance": "gateways.testing.state",
    "StateStoreHarness": "gateways.testing.state",
}


def __getattr__(name: str) -> Any:
    """Import the platform kits and the conformance kit on first use."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
