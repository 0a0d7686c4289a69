"""The IRC adapter (``type: irc``): IRC channels and private messages as chat scopes, on pydle.

``IrcGateway`` is the protocol server and ``IrcGatewayOptions`` its YAML options
(``docs/irc.md``). Inside: ``gateway`` (conversations and sending), ``lifecycle`` (TLS,
registering, joining and reconnecting; ``IrcAuthError``, ``IrcTlsError``), ``client`` (the
pydle connection and its workarounds), ``text`` (splitting, CTCP, mentions, pacing) and
``options``. The test server runner is ``gateways.testing.Ngircd``.
"""

from __future__ import annotations

from gateways.irc.gateway import IrcGateway
from gateways.irc.lifecycle import IrcAuthError, IrcTlsError, tls_context
from gateways.irc.options import IrcGatewayOptions

__all__ = ["IrcAuthError", "IrcGateway", "IrcGatewayOptions", "IrcTlsError", "tls_context"]
