"""A Channels-style application with an MQTT part and a browser part, in one daemon: each
reading published to ``sensors/{name}`` is sent to the group ``readings`` by one of our
MQTT consumers, and Channels' own ``AsyncJsonWebsocketConsumer``, unchanged, relays the
group's messages to every browser connected to ``/ws``. ``GET /health`` answers ``ok``. And
a chat part: a conversation (the web chat) in the same group answers ``last`` with the last
reading it heard: http, websocket, mqtt and chat scopes in one daemon."""

from __future__ import annotations

from typing import Any

import django
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from consumers import ChatConsumer, MqttConsumer, ProtocolTypeRouter, TopicRouter, command, route

if not settings.configured:
    # The least of a Django settings module; the channel layer comes from the daemon.
    settings.configure(DATABASES={}, INSTALLED_APPS=["channels"])
    django.setup()


class Sensor(MqttConsumer):
    """One instance per topic ``sensors/{name}``; every reading goes to the group."""

    async def receive(self, message: Any) -> None:
        name = self.scope["route"]["kwargs"]["name"]
        reading = {"sensor": name, "value": message["payload"].decode()}
        await self.channel_layer.group_send("readings", {"type": "reading", "reading": reading})


class Dashboard(AsyncJsonWebsocketConsumer):
    """Channels' consumer: joins ``readings`` (its ``groups``) and relays each reading."""

    groups = ("readings",)

    async def connect(self) -> None:
        await self.accept()
        await self.send_json({"joined": "readings"})

    async def reading(self, event: dict[str, Any]) -> None:
        await self.send_json(event["reading"])


class LastReading(ChatConsumer):
    """One instance per chat conversation, in ``readings``: ``last`` answers its last one."""

    groups = ("readings",)

    async def connect(self) -> None:
        self.last: dict[str, Any] | None = None

    async def reading(self, event: dict[str, Any]) -> None:
        self.last = event["reading"]

    @command("last")
    async def last_reading(self, message: Any, args: list[str]) -> None:
        if self.last is None:
            await self.say("no reading yet")
        else:
            await self.say(f"{self.last['sensor']}: {self.last['value']}")


async def health(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


application = ProtocolTypeRouter(
    {
        "mqtt": TopicRouter([route("sensors/{name}", Sensor.as_asgi())]),
        "websocket": Dashboard.as_asgi(),
        "http": health,
        "chat": LastReading.as_asgi(),
    }
)
