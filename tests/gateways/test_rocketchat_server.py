"""RocketChatTestServer itself, with a plain aiohttp client: the REST API's token headers and
answers, and the realtime API's DDP handshake, login, subscription and methods."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateways.testing.rocketchat import RocketChatTestServer


@pytest.fixture
async def server() -> AsyncIterator[RocketChatTestServer]:
    async with RocketChatTestServer.started() as started:
        yield started


def headers(server: RocketChatTestServer) -> dict[str, str]:
    return {"X-User-Id": server.user_id, "X-Auth-Token": server.token}


async def test_rest_needs_the_token_and_answers_as_rocketchat(
    server: RocketChatTestServer,
) -> None:
    alice = server.add_user("alice")
    room = server.add_room("general", members=[alice["_id"]])
    async with aiohttp.ClientSession(server.url) as http:
        async with http.get("/api/v1/me") as response:
            assert response.status == 401
            assert (await response.json())["status"] == "error"
        async with http.get("/api/v1/me", headers=headers(server)) as response:
            me = await response.json()
        assert (me["_id"], me["username"], me["success"]) == (server.user_id, "bot", True)
        body: dict[str, Any] = {"message": {"_id": "Chosen1d", "rid": room, "msg": "hi"}}
        async with http.post("/api/v1/chat.sendMessage", json=body, headers=headers(server)) as r:
            sent = await r.json()
        assert sent["message"]["_id"] == "Chosen1d"
        assert sent["message"]["ts"].endswith("Z")
        async with http.post("/api/v1/chat.sendMessage", json=body, headers=headers(server)) as r:
            assert r.status == 400
            assert (await r.json())["errorType"] == "error-message-already-exists"
        async with http.post(
            "/api/v1/chat.sendMessage", json={"msg": "x"}, headers=headers(server)
        ) as r:
            assert r.status == 400
        async with http.get("/api/v1/rooms.get", headers=headers(server)) as response:
            rooms = (await response.json())["update"]
        assert [r["_id"] for r in rooms] == [room]
    assert [m["msg"] for m in server.sent] == ["hi"]


async def test_the_realtime_api_speaks_ddp(server: RocketChatTestServer) -> None:
    alice = server.add_user("alice")
    room = server.add_room("general", members=[alice["_id"]])
    first = await server.post(room, alice, "one")
    await server.post(room, alice, "two")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{server.url}/websocket") as ws:
        assert await ws.receive_json() == {"server_id": "0"}
        await ws.send_json({"msg": "connect", "version": "1", "support": ["1"]})
        assert (await ws.receive_json())["msg"] == "connected"
        await ws.send_json({"msg": "ping", "id": "p"})
        assert await ws.receive_json() == {"msg": "pong", "id": "p"}
        await ws.send_json({"msg": "method", "id": "1", "method": "loadMissedMessages"})
        assert (await ws.receive_json())["error"]["error"] == 401
        await ws.send_json(
            {"msg": "method", "id": "2", "method": "login", "params": [{"resume": "wrong"}]}
        )
        assert (await ws.receive_json())["error"]["error"] == 403
        login = {
            "msg": "method",
            "id": "3",
            "method": "login",
            "params": [{"resume": server.token}],
        }
        await ws.send_json(login)
        assert (await ws.receive_json())["result"]["id"] == server.user_id
        await ws.send_json({"msg": "sub", "id": "s1", "name": "stream-notify-all", "params": []})
        assert (await ws.receive_json())["msg"] == "nosub"
        sub = {
            "msg": "sub",
            "id": "s2",
            "name": "stream-room-messages",
            "params": ["__my_messages__", False],
        }
        await ws.send_json(sub)
        assert await ws.receive_json() == {"msg": "ready", "subs": ["s2"]}
        since = {"$date": first["ts"] - 1}
        await ws.send_json(
            {"msg": "method", "id": "4", "method": "loadMissedMessages", "params": [room, since]}
        )
        missed = (await ws.receive_json())["result"]
        assert [m["msg"] for m in missed] == ["two", "one"]  # newest first
        assert missed[0]["ts"] == {"$date": missed[0]["ts"]["$date"]}
        await server.post(room, alice, "three")
        changed = await ws.receive_json()
        assert changed["collection"] == "stream-room-messages"
        message, meta = changed["fields"]["args"]
        assert message["msg"] == "three"
        assert meta == {"roomParticipant": True, "roomType": "c", "roomName": "general"}
        await ws.send_json({"msg": "method", "id": "5", "method": "nosuchmethod", "params": []})
        assert (await ws.receive_json())["error"]["error"] == 404
