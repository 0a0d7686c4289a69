"""The IRC adapter (``type: irc``): IRC channels and private messages as chat scopes, on pydle.

``IrcGateway`` is the protocol server and ``IrcGatewayOptions`` its YAML options
(``docs/irc.md``). Inside: ``gateway`` (conversations, sending, reconnecting), ``client``
(the pydle connection and its workarounds), ``text`` (splitting, CTCP, mentions, pacing)
and ``options``. The test server runner is ``gateways.testing.Ngircd``.
"""

from __future__ import annotations

from gateways.irc.gateway import IrcAuthError, IrcGateway, IrcTlsError, tls_context
from gateways.irc.options import IrcGatewayOptions

__all__ = ["IrcAuthError", "IrcGateway", "IrcGatewayOptions", "IrcTlsError", "tls_context"]
