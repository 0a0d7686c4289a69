"""DiscordTestServer on the wire, with a bare aiohttp client: what Discord's documentation
says the REST API and the gateway do, so any client library meets the same protocol."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateways.testing.discord import CREATE_MESSAGE, DiscordTestServer


class Wire:
    """One gateway connection, reading zlib-stream (or plain) payloads."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, compressed: bool) -> None:
        self.socket = socket
        self.inflator = zlib.decompressobj() if compressed else None

    async def read(self) -> dict[str, Any]:
        frame = await self.socket.receive(timeout=5)
        if frame.type == aiohttp.WSMsgType.BINARY and self.inflator is not None:
            assert frame.data.endswith(b"\x00\x00\xff\xff")
            result: dict[str, Any] = json.loads(self.inflator.decompress(frame.data))
            return result
        if frame.type == aiohttp.WSMsgType.TEXT:
            text: dict[str, Any] = json.loads(frame.data)
            return text
        raise AssertionError(f"not a payload: {frame.type} {frame.data!r} {frame.extra!r}")

    async def send(self, op: int, d: Any) -> None:
        await self.socket.send_bytes(json.dumps({"op": op, "d": d}).encode())

    async def closed_with(self) -> int | None:
        frame = await self.socket.receive(timeout=5)
        assert frame.type == aiohttp.WSMsgType.CLOSE, frame
        return self.socket.close_code


@pytest.fixture
async def server() -> AsyncIterator[DiscordTestServer]:
    async with DiscordTestServer.started(heartbeat_interval=1.5) as found:
        guild = found.add_guild("g")
        found.add_channel(guild, "general")
        yield found


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as found:
        yield found


async def connect(
    session: aiohttp.ClientSession, server: DiscordTestServer, compress: bool = True
) -> Wire:
    query = "?v=10&encoding=json" + ("&compress=zlib-stream" if compress else "")
    socket = await session.ws_connect(server.gateway_url() + query)
    return Wire(socket, compress)


def identify(
    server: DiscordTestServer, token: str | None = None, intents: int = 513
) -> dict[str, Any]:
    return {
        "token": token or server.token,
        "intents": intents,
        "properties": {"os": "linux", "browser": "test", "device": "test"},
    }


async def test_rest_needs_the_bot_token_and_names_the_gateway(
    server: DiscordTestServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{server.api_url}/gateway/bot") as response:
        assert response.status == 401
        assert await response.json() == {"message": "401: Unauthorized", "code": 0}
    auth = {"Authorization": f"Bot {server.token}"}
    async with session.get(f"{server.api_url}/gateway/bot", headers=auth) as response:
        body = await response.json()
        assert body["url"] == server.gateway_url()
        assert body["shards"] == 1
        assert body["session_start_limit"]["max_concurrency"] == 1
    async with session.get(f"{server.api_url}/users/@me", headers=auth) as response:
        me = await response.json()
        assert (me["id"], me["bot"]) == (server.bot_id, True)


async def test_create_message_keeps_buckets_and_answers_429_as_documented(
    server: DiscordTestServer, session: aiohttp.ClientSession
) -> None:
    channel = next(iter(server.channels))
    auth = {"Authorization": f"Bot {server.token}"}
    url = f"{server.api_url}/channels/{channel}/messages"
    async with session.post(url, json={"content": "hi"}, headers=auth) as response:
        assert response.status == 200
        assert response.headers["X-RateLimit-Limit"] == "50"
        assert response.headers["X-RateLimit-Remaining"] == "49"
        assert float(response.headers["X-RateLimit-Reset-After"]) > 0
        bucket = response.headers["X-RateLimit-Bucket"]
        assert (await response.json())["content"] == "hi"
    server.fail_next(CREATE_MESSAGE, 429, retry_after=1.5)
    async with session.post(url, json={"content": "again"}, headers=auth) as response:
        assert response.status == 429
        assert await response.json() == {
            "message": "You are being rate limited.",
            "retry_after": 1.5,
            "global": False,
        }
        assert response.headers["Retry-After"] == "2"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.headers["X-RateLimit-Bucket"] == bucket
    async with session.post(url, json={"content": ""}, headers=auth) as response:
        assert response.status == 400
        assert (await response.json())["code"] == 50006
    async with session.post(
        f"{server.api_url}/channels/1/messages", json={"content": "x"}, headers=auth
    ) as response:
        assert response.status == 404
        assert (await response.json())["code"] == 10003
    assert [s.content for s in server.sent] == ["hi"]
    assert [c.status for c in server.calls_to(CREATE_MESSAGE)] == [200, 429, 400, 404]


async def test_hello_heartbeat_identify_ready_and_dispatches_with_sequence_numbers(
    server: DiscordTestServer, session: aiohttp.ClientSession
) -> None:
    wire = await connect(session, server)
    hello = await wire.read()
    assert hello["op"] == 10
    assert hello["d"]["heartbeat_interval"] == 1500
    await wire.send(1, None)
    assert (await wire.read())["op"] == 11
    await wire.send(2, identify(server))
    ready = await wire.read()
    assert (ready["op"], ready["t"], ready["s"]) == (0, "READY", 1)
    assert ready["d"]["resume_gateway_url"] == server.gateway_url()
    assert ready["d"]["user"]["id"] == server.bot_id
    guild = await wire.read()
    assert (guild["t"], guild["s"]) == ("GUILD_CREATE", 2)
    assert [c["name"] for c in guild["d"]["channels"]] == ["general"]
    alice = server.add_user("alice")
    channel = guild["d"]["channels"][0]["id"]
    posted = await server.post_message(channel, alice, "hello")
    created = await wire.read()
    assert (created["t"], created["s"], created["d"]["id"]) == ("MESSAGE_CREATE", 3, posted["id"])
    assert created["d"]["content"] == ""  # intents 513 lack MESSAGE_CONTENT
    await wire.socket.close()


async def test_a_resume_replays_what_was_missed_then_says_resumed(
    server: DiscordTestServer, session: aiohttp.ClientSession
) -> None:
    wire = await connect(session, server, compress=False)
    await wire.read()
    await wire.send(2, identify(server, intents=(1 << 0) | (1 << 9) | (1 << 15)))
    ready, guild = await wire.read(), await wire.read()
    session_id = ready["d"]["session_id"]
    await server.drop_gateway(abrupt=True)
    alice = server.add_user("alice")
    channel = guild["d"]["channels"][0]["id"]
    first = await server.post_message(channel, alice, "one")
    second = await server.post_message(channel, alice, "two")
    again = await connect(session, server, compress=False)
    await again.read()
    await again.send(6, {"token": server.token, "session_id": session_id, "seq": 2})
    replayed = [await again.read() for _ in range(3)]
    assert [(p["t"], p["s"]) for p in replayed] == [
        ("MESSAGE_CREATE", 3),
        ("MESSAGE_CREATE", 4),
        ("RESUMED", 5),
    ]
    assert [p["d"].get("id") for p in replayed[:2]] == [first["id"], second["id"]]
    assert replayed[0]["d"]["content"] == "one"
    await again.socket.close()


async def test_refusals_close_with_discords_codes(
    server: DiscordTestServer, session: aiohttp.ClientSession
) -> None:
    wire = await connect(session, server)
    await wire.read()
    await wire.send(2, identify(server, token="wrong"))
    assert await wire.closed_with() == 4004
    wire = await connect(session, server)
    await wire.read()
    await wire.send(3, {"status": "online"})
    assert await wire.closed_with() == 4003
    wire = await connect(session, server)
    await wire.read()
    await wire.send(2, identify(server, intents=1 << 1))  # GUILD_MEMBERS: not enabled
    assert await wire.closed_with() == 4014
    wire = await connect(session, server)
    await wire.read()
    await wire.send(6, {"token": server.token, "session_id": "nope", "seq": 3})
    invalid = await wire.read()
    assert (invalid["op"], invalid["d"]) == (9, False)
    await wire.socket.close()
    assert server.close_codes == [4004, 4003, 4014]
