"""The HTTP adapter (``type: http``): the application's ``http`` and ``websocket`` scopes,
served by uvicorn inside the daemon's event loop, with the daemon's channel layer.

``HttpGateway`` is the protocol server and ``HttpGatewayOptions`` its YAML options
(``docs/http.md``; the scope keys it adds: ``docs/specs/http.md``). Inside: ``gateway``
(uvicorn's ``Config`` and ``Server``, started and stopped by the gateway), ``scopes`` (the
application uvicorn calls: scope keys, the body limit, counts), ``logs`` (uvicorn's records
named after the gateway), ``channels`` (Channels' layer alias on the daemon's layer),
``metrics`` and ``options``. Needs the ``http`` extra (uvicorn, websockets).
"""

from __future__ import annotations

from gateways.http.gateway import HttpGateway
from gateways.http.options import HttpGatewayOptions

__all__ = ["HttpGateway", "HttpGatewayOptions"]
