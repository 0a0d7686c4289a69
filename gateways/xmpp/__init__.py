"""The XMPP adapter (``type: xmpp``): one-to-one chats and multi-user rooms as chat scopes,
on slixmpp.

``XmppGateway`` is the protocol server and ``XmppGatewayOptions`` its YAML options
(``docs/xmpp.md``). Inside: ``gateway`` (conversations, sending, reconnecting), ``client``
(the slixmpp stream: one attempt at a time, TLS, errors, XEP-0198 acknowledgements),
``text`` (mentions, delays, ids) and ``options``. The test server runner is
``gateways.testing.prosody.Prosody``.
"""

from __future__ import annotations

from gateways.xmpp.gateway import XmppAuthError, XmppGateway, XmppTlsError
from gateways.xmpp.options import XmppGatewayOptions, XmppRoom, XmppTls

__all__ = [
    "XmppAuthError",
    "XmppGateway",
    "XmppGatewayOptions",
    "XmppRoom",
    "XmppTls",
    "XmppTlsError",
]
