"""A local server playing the Bot Framework for Microsoft Teams bots (the OpenID metadata and
keys, the token endpoint, the Bot Connector, and Teams POSTing signed activities), for tests
of Teams bots that cannot reach Microsoft: ``TeamsTestServer``. The Teams gateway runs against
it unchanged, pointed at it by its options (``server.options()``). Payload builders are in
``payloads``, keys and tokens (good and bad) in ``tokens``.
"""

from __future__ import annotations

from gateways.testing.teams.payloads import channel, group_chat, mention, personal, user
from gateways.testing.teams.server import Delivery, HttpAnswer, SentActivity, TeamsTestServer
from gateways.testing.teams.tokens import ISSUER, SigningKeys

__all__ = [
    "ISSUER",
    "Delivery",
    "HttpAnswer",
    "SentActivity",
    "SigningKeys",
    "TeamsTestServer",
    "channel",
    "group_chat",
    "mention",
    "personal",
    "user",
]
