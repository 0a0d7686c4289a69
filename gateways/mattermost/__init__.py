"""The Mattermost adapter (``type: mattermost``): Mattermost channels, DMs, group DMs and
threads as chat scopes, over the API v4 on aiohttp.

``MattermostGateway`` is the protocol server and ``MattermostGatewayOptions`` its YAML
options (``docs/mattermost.md``). Inside: ``gateway`` (lifecycle, catch-up, sending),
``socket`` (the WebSocket, resumed by ``seq``), ``api`` (the REST calls, 429s and retries),
``inbound`` (posts and reactions to chat events), ``ledger`` (what was handled, from when
to catch up) and ``options``. The wire test server is
``gateways.testing.mattermost.MattermostTestServer``.
"""

from __future__ import annotations

from gateways.mattermost.gateway import MattermostGateway
from gateways.mattermost.options import MattermostGatewayOptions

__all__ = ["MattermostGateway", "MattermostGatewayOptions"]
