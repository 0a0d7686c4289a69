"""The Slack adapter (``type: slack``): Slack conversations as chat scopes, on slack-bolt.

``SlackGateway`` is the protocol server and ``SlackGatewayOptions`` its YAML options
(``docs/slack.md``). Inside: ``gateway`` (Bolt's ``AsyncApp``, its listeners, and sending),
``transport`` (Socket Mode or the Events API listener, checking what arrives), ``inbound``
(Slack events to chat events), ``outbound`` (chat events to Web API arguments), ``events``
(parsing Slack payloads), ``options`` and ``retry`` (slack_sdk's retry handlers). The wire
test server is ``gateways.testing.SlackTestServer``.
"""

from __future__ import annotations

from gateways.slack.gateway import SlackGateway
from gateways.slack.options import SlackGatewayOptions, SlackRetry

__all__ = ["SlackGateway", "SlackGatewayOptions", "SlackRetry"]
