"""A Mattermost wire test server for your tests: ``MattermostTestServer`` (the REST API v4
and the WebSocket on one loopback port).

Needs aiohttp (the ``mattermost`` extra has it). ``docs/mattermost.md`` shows how to use it.
"""

from __future__ import annotations

from gateways.testing.mattermost.rest import CREATE_POST, RestCall
from gateways.testing.mattermost.server import MattermostTestServer
from gateways.testing.mattermost.websocket import Session
from gateways.testing.mattermost.world import SentPost, new_id

__all__ = ["CREATE_POST", "MattermostTestServer", "RestCall", "SentPost", "Session", "new_id"]
