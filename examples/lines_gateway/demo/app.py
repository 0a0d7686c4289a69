"""A lines application: answers each line of a key with the key's running count."""

from __future__ import annotations

from layer.types import Receive, Scope, Send


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    count = 0
    while (event := await receive())["type"] != "lines.disconnect":
        if event["type"] == "lines.line":
            count += 1
            await send({"type": "lines.send", "text": f"{count} {event['text'].upper()}"})
