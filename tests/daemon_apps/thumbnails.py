"""A test application for workers: a consumer of ``images/{name}`` hands each payload off
to the ``thumbnails`` channel with ``layer.send``; the worker's consumer makes the
"thumbnail" (the payload upper-cased) and sends it back to the requesting consumer's channel
name, which publishes it to ``images/{name}/thumbnail``. A payload ``boom`` makes the worker's
consumer raise."""

from __future__ import annotations

from typing import Any

from consumers import (
    AsyncConsumer,
    ChannelNameRouter,
    MqttConsumer,
    ProtocolTypeRouter,
    TopicRouter,
    route,
)


class ImageConsumer(MqttConsumer):
    async def receive(self, message: Any) -> None:
        await self.channel_layer.send(
            "thumbnails",
            {
                "type": "thumbnail.generate",
                "name": self.scope["route"]["kwargs"]["name"],
                "data": message["payload"].decode(),
                "reply_to": self.channel_name,
            },
        )

    async def thumbnail_done(self, message: dict[str, Any]) -> None:
        await self.publish(f"images/{message['name']}/thumbnail", message["thumbnail"], qos=1)


class ThumbnailWorker(AsyncConsumer):
    async def thumbnail_generate(self, message: dict[str, Any]) -> None:
        if message["data"] == "boom":
            raise RuntimeError(f"thumbnail of {message['name']!r} failed")
        scope = self.scope
        await self.channel_layer.send(
            message["reply_to"],
            {
                "type": "thumbnail.done",
                "name": message["name"],
                "thumbnail": f"{message['data'].upper()} by {scope['gateway']}/{scope['channel']}",
            },
        )


application = ProtocolTypeRouter(
    {
        "mqtt": TopicRouter([route("images/{name}", ImageConsumer.as_asgi())]),
        "channel": ChannelNameRouter({"thumbnails": ThumbnailWorker.as_asgi()}),
    }
)
