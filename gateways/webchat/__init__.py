"""The web chat adapter (``type: webchat``): browser sessions as chat scopes, over a
WebSocket served with aiohttp, with a page and an embeddable widget (``static/``).

``WebChatGateway`` is the protocol server and ``WebChatGatewayOptions`` its YAML options
(``docs/webchat.md``). Inside: ``gateway`` (the listener, the page, sending), ``connection``
(one page's socket), ``frames`` (the wire protocol), ``sessions`` (outboxes, rates, expiry),
``auth`` (host sites' tokens, PyJWT) and ``options``. The test client is
``gateways.testing.webchat.WebChatClient``.
"""

from __future__ import annotations

from gateways.webchat.gateway import WebChatGateway
from gateways.webchat.options import WebChatGatewayOptions

__all__ = ["WebChatGateway", "WebChatGatewayOptions"]
