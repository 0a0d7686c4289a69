"""A test application with a lifespan part (gateways.daemon.lifespan): its startup and
shutdown are written to ``$LIFESPAN_LOG``; ``LIFESPAN_FAIL=1`` makes the startup fail. The
MQTT consumer answers ``ping`` with what the startup put in place, so an answer shows the
startup ran before the gateway served."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from consumers import MqttConsumer, ProtocolTypeRouter, TopicRouter, route

#: Set by the lifespan startup; what ``ping`` answers.
started: dict[str, Any] = {}


def log(line: str) -> None:
    with Path(os.environ["LIFESPAN_LOG"]).open("a") as file:
        file.write(line + "\n")


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if os.environ.get("LIFESPAN_FAIL"):
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            started["greeting"] = "pong"
            scope["state"]["greeting"] = "pong"
            log(f"startup layer={'channel_layer' in scope}")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            log("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


class Ping(MqttConsumer):
    async def mqtt_message(self, event: Any) -> None:
        await self.publish("pong", started.get("greeting", "not started").encode(), qos=1)


mqtt = TopicRouter([route("ping", Ping.as_asgi())])
application = ProtocolTypeRouter({"mqtt": mqtt, "lifespan": lifespan})
#: The same without a lifespan part.
without_lifespan = ProtocolTypeRouter({"mqtt": mqtt})


async def looping(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw loop that skips the event types it does not know (as many plain ASGI apps do):
    given a lifespan scope, it never answers ``lifespan.startup``."""
    while (event := await receive())["type"] not in ("mqtt.disconnect", "lifespan.shutdown"):
        if event["type"] == "mqtt.message":
            payload = started.get("greeting", "not started").encode()
            await send({"type": "mqtt.publish", "topic": "pong", "payload": payload, "qos": 1})
