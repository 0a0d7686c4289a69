"""Other frameworks' applications behind the HTTP gateway, unchanged: Channels' own
``AsyncJsonWebsocketConsumer`` on the daemon's in-memory channel layer (through Channels'
``channel_layers``, which the gateway points at that layer), a Starlette and a FastAPI app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import django
import httpx
import pytest
import websockets
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from django.conf import settings
from django.urls import path
from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from consumers import AsyncConsumer, ProtocolTypeRouter
from gateways.http import HttpGateway, HttpGatewayOptions
from layer import InMemoryChannelLayer

pytestmark = pytest.mark.timeout(60)

if not settings.configured:
    # A Channels project has a settings module; this is the least of one. CHANNEL_LAYERS is
    # left out on purpose: the gateway supplies the layer.
    settings.configure(DATABASES={}, INSTALLED_APPS=["channels"])
    django.setup()


class Room(AsyncJsonWebsocketConsumer):
    """Channels' own consumer, as in Channels' tutorial: joins the room's group, relays."""

    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()
        await self.send_json({"joined": self.room, "channel": self.channel_name})

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.room, self.channel_name)

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"text": event["text"]})


class Announcer(AsyncConsumer):
    """One of our consumers, on ``scope["channel_layer"]`` (here, a ``channel`` scope)."""

    async def announce(self, event: dict[str, Any]) -> None:
        await self.channel_layer.group_send(
            "lobby", {"type": "room.message", "text": event["text"]}
        )


@pytest.fixture
def serve(
    run_gateway: Callable[[Any], Awaitable[Any]],
) -> Callable[..., Awaitable[HttpGateway]]:
    async def start(application: Any, layer: Any = None) -> HttpGateway:
        gateway = HttpGateway("web", application, HttpGatewayOptions(port=0), channel_layer=layer)
        await run_gateway(gateway)
        return gateway

    return start


def ws_url(gateway: HttpGateway, path: str) -> str:
    assert gateway.url is not None
    return gateway.url.replace("http", "ws", 1) + path


async def test_a_channels_consumer_joins_a_group_on_the_daemon_layer(serve: Any) -> None:
    layer = InMemoryChannelLayer()
    application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/<room>", Room.as_asgi())])})
    gateway = await serve(application, layer)
    assert get_channel_layer() is layer  # Channels' own lookup finds the daemon's layer
    async with websockets.connect(ws_url(gateway, "/ws/lobby")) as browser:
        joined = json.loads(await asyncio.wait_for(browser.recv(), 10))
        assert joined["joined"] == "lobby"
        # A message sent to the group from elsewhere, straight on the layer...
        await layer.group_send("lobby", {"type": "room.message", "text": "from the layer"})
        assert json.loads(await asyncio.wait_for(browser.recv(), 10)) == {"text": "from the layer"}
        # ... and from one of our consumers, which finds the layer in its scope.
        scope = {"type": "channel", "channel": "announcer", "channel_layer": layer}
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        announcer = asyncio.create_task(Announcer.as_asgi()(scope, queue.get, _no_send))
        await queue.put({"type": "announce", "text": "from our consumer"})
        assert json.loads(await asyncio.wait_for(browser.recv(), 10)) == {
            "text": "from our consumer"
        }
        announcer.cancel()
        await asyncio.wait([announcer])
    await gateway.stop()
    assert get_channel_layer() is not layer  # put back on stop


async def _no_send(message: dict[str, Any]) -> None:
    raise AssertionError(f"unexpected send {message!r}")


async def test_a_starlette_app_is_served(serve: Any) -> None:
    async def home(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {"path": request.url.path, "gateway": request.scope["gateway"], "size": len(body)}
        )

    async def echo(websocket: Any) -> None:
        await websocket.accept()
        await websocket.send_text((await websocket.receive_text()).upper())
        await websocket.close()

    app = Starlette(routes=[Route("/home", home, methods=["POST"]), WebSocketRoute("/ws", echo)])
    gateway = await serve(app)
    async with httpx.AsyncClient(base_url=gateway.url or "", timeout=10) as http:
        answer = await http.post("/home", content=b"abc")
    assert answer.json() == {"path": "/home", "gateway": "web", "size": 3}
    async with websockets.connect(ws_url(gateway, "/ws")) as ws:
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), 10) == "HI"


async def test_a_fastapi_app_is_served(serve: Any) -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"echo": data})
        await websocket.close()

    layer = InMemoryChannelLayer()
    gateway = await serve(app, layer)
    async with httpx.AsyncClient(base_url=gateway.url or "", timeout=10) as http:
        assert (await http.get("/items/7")).json() == {"item_id": 7}
        assert (await http.get("/items/x")).status_code == 422
        assert (await http.get("/openapi.json")).status_code == 200
    async with websockets.connect(ws_url(gateway, "/ws")) as ws:
        await ws.send(json.dumps({"a": 1}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"echo": {"a": 1}}
