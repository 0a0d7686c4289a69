"""``MattermostTestServer``: a local server speaking Mattermost's API v4, to test Mattermost
bots offline.

A client runs unchanged against it, pointed at ``server.url`` (``http://127.0.0.1:<port>``;
the REST API is ``<url>/api/v4``, the WebSocket ``ws://127.0.0.1:<port>/api/v4/websocket``)
with ``server.token``:

- **REST** (``gateways.testing.mattermost.rest``): the bot user, teams, channels, posts
  (``since``), creating posts (recorded in ``sent``; ``wait_for_sent``), reactions, typing;
  429s with Mattermost's headers (``fail_next``, ``rate_limit``), 5xx, and answers cut off
  (``cut_next``);
- **WebSocket** (``gateways.testing.mattermost.websocket``): ``hello``, ``seq``, resumes
  with ``connection_id`` and ``sequence_number``; ``drop_websocket``, ``forget_sessions``
  (a server restart), ``skip_seq``, ``send_raw``;
- **the world** (``gateways.testing.mattermost.world``): ``add_team``, ``add_channel``,
  ``dm``, ``group_dm``, ``add_user``; ``post`` posts a user's message and broadcasts it,
  ``react`` a user's reaction.

For instance::

    async with MattermostTestServer.started() as mattermost:
        team = mattermost.add_team("test")
        town = mattermost.add_channel(team, "town-square")
        alice = mattermost.add_user("alice")
        ...                                   # start the bot with url and token
        await mattermost.wait_ready()
        await mattermost.post(town, alice, "@gatewaybot hi")
        sent = await mattermost.wait_for_sent()

Protocol source: https://api.mattermost.com/ (REST, "WebSocket", "Rate limiting").
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateways.testing.http_server import HttpTestServer
from gateways.testing.mattermost.rest import CREATE_POST, RestApi, RestCall
from gateways.testing.mattermost.world import SentPost
from gateways.testing.processes import free_port

__all__ = ["CREATE_POST", "MattermostTestServer", "RestCall", "SentPost"]


class MattermostTestServer(RestApi, HttpTestServer):
    """A local Mattermost: the REST API over HTTP and the WebSocket, one port.

    Args:
        host: Address to listen on.
        port: Port; a free one when ``None``.
        bot_name: The bot's username.
        token: The access token accepted; a new one when ``None``.
        queue_size: Events a WebSocket session keeps for a resume.
        rate_limit: ``(requests, seconds)`` per window; ``None``: no limit.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        bot_name: str = "gatewaybot",
        token: str | None = None,
        queue_size: int = 128,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        super().__init__(
            bot_name=bot_name, token=token, queue_size=queue_size, rate_limit=rate_limit
        )
        self.host = host
        self.port = port if port is not None else free_port(host)

    def __repr__(self) -> str:
        return f"<MattermostTestServer {self.url} sessions={len(self.live_sessions)}>"

    @property
    def url(self) -> str:
        """``http://host:port``: the server's base URL (the gateway's ``url``)."""
        return f"http://{self.host}:{self.port}"

    def add_routes(self, app: web.Application) -> None:
        self.add_rest_routes(app, "/api/v4")
        app.router.add_get("/api/v4/websocket", self.handle_websocket)

    async def close_connections(self) -> None:
        """Close every WebSocket connection."""
        await self.drop_websocket()

    # -- what a test does ------------------------------------------------------------------

    async def post(
        self,
        channel_id: str,
        user: dict[str, Any] | str,
        message: str,
        *,
        root_id: str = "",
        props: dict[str, Any] | None = None,
        files: list[dict[str, Any]] | None = None,
        post_type: str = "",
    ) -> dict[str, Any]:
        """Post ``message`` as ``user`` in a channel, DM or thread (``root_id``), and
        broadcast ``posted`` to the channel's members.

        Args:
            channel_id: Where (``add_channel``, ``dm``, ``group_dm``).
            user: A user object from ``add_user``, or a user's id.
            message: The text; ``@username`` in it mentions that user.
            root_id: The thread: a post of that channel (its root is used).
            props: The post's props (``{"from_bot": "true"}`` as a bot's).
            files: ``FileInfo`` objects (``id``, ``name``, ``mime_type``, ``size``).
            post_type: ``""``, or a system type (``system_join_channel``).

        Returns:
            The post.

        Raises:
            KeyError: Unknown channel, user or root post.
        """
        user_id = user if isinstance(user, str) else str(user["id"])
        post = self.new_post(
            channel_id,
            user_id,
            message,
            root_id=root_id,
            props=props,
            files=files,
            post_type=post_type,
        )
        await self.broadcast_post(post)
        return post

    async def react(
        self, post_id: str, user: dict[str, Any] | str, emoji: str, *, added: bool = True
    ) -> dict[str, Any]:
        """React to a post as ``user`` (or take the reaction away) and broadcast it.

        Raises:
            KeyError: Unknown post.
        """
        user_id = user if isinstance(user, str) else str(user["id"])
        reaction = {
            "user_id": user_id,
            "post_id": self.posts[post_id]["id"],
            "emoji_name": emoji,
            "create_at": self.now(),
        }
        await self.broadcast_reaction(reaction, added=added)
        return reaction
