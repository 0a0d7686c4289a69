"""The Microsoft Teams adapter (``type: teams``): Teams conversations as chat scopes, over the
Bot Framework's Bot Connector REST protocol (aiohttp, PyJWT).

``TeamsGateway`` is the protocol server and ``TeamsGatewayOptions`` its YAML options
(``docs/teams.md``). Inside: ``gateway`` (the messaging endpoint, sending), ``auth``
(inbound JWTs against the OpenID keys), ``credentials`` (the bot's client-credentials
token), ``inbound`` (activities to chat events), ``outbound`` (Bot Connector calls),
``ledger`` (which activities were handled: at least once, never twice) and ``options``. The
wire test server is ``gateways.testing.teams.TeamsTestServer``.
"""

from __future__ import annotations

from gateways.teams.gateway import TeamsGateway
from gateways.teams.options import TeamsGatewayOptions

__all__ = ["TeamsGateway", "TeamsGatewayOptions"]
