"""A test application for at-least-once delivery: every ``mqtt.message`` it handles takes
``WORK_SECONDS`` (default 4 ms) and is then written, one line each (``<payload>``, plus
`` dup`` when the broker marked it redelivered), to the file ``RECORD_FILE``.

A line is written before the consumer asks for its next event, which is when the gateway
acknowledges the message: so every message the broker saw acknowledged has its line, and a
process killed in between leaves a line for a message that comes again."""

from __future__ import annotations

import asyncio
import os
from typing import Any

RECORD_FILE = os.environ["RECORD_FILE"]
WORK_SECONDS = float(os.environ.get("WORK_SECONDS", "0.004"))


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    record = os.open(RECORD_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while True:
            event = await receive()
            if event["type"] == "mqtt.message":
                await asyncio.sleep(WORK_SECONDS)
                os.write(record, event["payload"] + (b" dup\n" if event["dup"] else b"\n"))
            elif event["type"] == "mqtt.disconnect":
                return
    finally:
        os.close(record)
