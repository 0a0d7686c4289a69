"""A test application: ``work/{name}`` echoes to ``work/{name}/done``, except that a payload
``boom`` makes the consumer raise; on disconnect it publishes the reason to
``bye/{name}``."""

from __future__ import annotations

from typing import Any

from consumers import MqttConsumer, ProtocolTypeRouter, TopicRouter, route


class Worker(MqttConsumer):
    async def connect(self) -> None:
        self.name = self.scope["route"]["kwargs"]["name"]
        self.seen = 0

    async def receive(self, message: Any) -> None:
        if message["payload"] == b"boom":
            raise RuntimeError(f"worker {self.name} hit a bad payload")
        self.seen += 1
        await self.publish(f"work/{self.name}/done", f"{self.seen}:".encode() + message["payload"])

    async def disconnect(self, reason: str) -> None:
        await self.publish(f"bye/{self.name}", reason, qos=1)


application = ProtocolTypeRouter({"mqtt": TopicRouter([route("work/{name}", Worker.as_asgi())])})
