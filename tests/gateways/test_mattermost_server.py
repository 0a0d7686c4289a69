"""MattermostTestServer on its own, as any client sees it: plain aiohttp requests and
WebSockets (the ``authentication_challenge`` form too, as other client libraries use),
``hello`` and ``seq``, resumes, REST errors and ``pending_post_id``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateways.testing.mattermost import CREATE_POST, MattermostTestServer


@pytest.fixture
async def server() -> AsyncIterator[MattermostTestServer]:
    async with MattermostTestServer.started() as started:
        yield started


@pytest.fixture
async def client(server: MattermostTestServer) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {server.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


async def _frame(socket: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await socket.receive(timeout=5)
    found: dict[str, Any] = json.loads(message.data)
    return found


async def test_rest_answers_app_errors_and_keeps_pending_post_ids(
    server: MattermostTestServer, client: aiohttp.ClientSession
) -> None:
    team = server.add_team("t")
    town = server.add_channel(team, "town-square")
    api = f"{server.url}/api/v4"
    async with aiohttp.ClientSession() as anonymous, anonymous.get(f"{api}/users/me") as answer:
        assert answer.status == 401
        assert (await answer.json())["id"] == "api.context.session_expired.app_error"
    async with client.get(f"{api}/users/me") as answer:
        assert (await answer.json())["username"] == "gatewaybot"
    body = {"channel_id": town, "message": "hi", "pending_post_id": "p1"}
    async with client.post(f"{api}/posts", json=body) as answer:
        first = await answer.json()
    async with client.post(f"{api}/posts", json=body) as answer:
        assert (answer.status, (await answer.json())["id"]) == (201, first["id"])
    assert [s.message for s in server.sent] == ["hi"]
    async with client.post(f"{api}/posts", json={"channel_id": 5}) as answer:
        assert answer.status == 400
    since = first["create_at"] - 1
    async with client.get(f"{api}/channels/{town}/posts", params={"since": str(since)}) as answer:
        assert (await answer.json())["order"] == [first["id"]]
    server.fail_next(CREATE_POST, 429, retry_after=2)
    async with client.post(f"{api}/posts", json=body) as answer:
        assert answer.status == 429
        assert answer.headers["Retry-After"] == "2"
        assert answer.headers["X-Ratelimit-Remaining"] == "0"


async def test_the_websocket_says_hello_numbers_events_and_resumes(
    server: MattermostTestServer, client: aiohttp.ClientSession
) -> None:
    team = server.add_team("t")
    alice = server.add_user("alice")
    town = server.add_channel(team, "town-square", members=[alice["id"]])
    url = f"ws://{server.host}:{server.port}/api/v4/websocket"
    async with client.ws_connect(url) as socket:
        hello = await _frame(socket)
        assert (hello["event"], hello["seq"]) == ("hello", 0)
        await server.post(town, alice, "hi @gatewaybot")
        posted = await _frame(socket)
        assert (posted["event"], posted["seq"]) == ("posted", 1)
        assert json.loads(posted["data"]["post"])["message"] == "hi @gatewaybot"
        assert json.loads(posted["data"]["mentions"]) == [server.bot_id]
    await server.until(lambda: not server.live_sessions, 5)
    await server.post(town, alice, "while away")
    connection_id = hello["data"]["connection_id"]
    params = {"connection_id": connection_id, "sequence_number": "2"}
    async with client.ws_connect(url, params=params) as socket:
        replayed = await _frame(socket)
        assert (replayed["event"], replayed["seq"]) == ("posted", 2)
    assert server.resumes == 1
    await server.forget_sessions()
    async with client.ws_connect(url, params=params) as socket:
        fresh = await _frame(socket)
        assert fresh["event"] == "hello"
        assert fresh["data"]["connection_id"] != connection_id


async def test_the_authentication_challenge(server: MattermostTestServer) -> None:
    url = f"ws://{server.host}:{server.port}/api/v4/websocket"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as socket:
            challenge = {"seq": 1, "action": "authentication_challenge", "data": {"token": "x"}}
            await socket.send_json(challenge)
            assert (await _frame(socket))["status"] == "FAIL"
        async with session.ws_connect(url) as socket:
            challenge["data"] = {"token": server.token}
            await socket.send_json(challenge)
            assert await _frame(socket) == {"status": "OK", "seq_reply": 1}
            assert (await _frame(socket))["event"] == "hello"
