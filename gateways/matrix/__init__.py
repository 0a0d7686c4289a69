"""The Matrix adapter (``type: matrix``): Matrix rooms and their threads as chat scopes, on
matrix-nio.

``MatrixGateway`` is the protocol server and ``MatrixGatewayOptions`` its YAML options
(``docs/matrix.md``). Inside: ``gateway`` (conversations, sending, the sync loop),
``inbound`` (a sync batch turned into chat events), ``client`` (the matrix-nio connection and
the store of the sync token), ``events`` (content in and out) and ``options``. The test
server runner is ``gateways.testing.synapse.Synapse``.
"""

from __future__ import annotations

from gateways.matrix.client import MatrixAuthError
from gateways.matrix.gateway import MatrixGateway
from gateways.matrix.options import MatrixGatewayOptions

__all__ = ["MatrixAuthError", "MatrixGateway", "MatrixGatewayOptions"]
