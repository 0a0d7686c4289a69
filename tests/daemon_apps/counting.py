"""A test application for effectively-once handling: one durable consumer per device that
counts its readings (``{"seq": <n>}``) and sums their sequence numbers in ``self.state``,
saved in the daemon's state store; with the gateway's ``idempotency_key: {json_field: seq}``
a reading the broker delivers again is skipped, so every count is exact."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pydantic import BaseModel

from consumers import JsonMqttConsumer

WORK_SECONDS = float(os.environ.get("WORK_SECONDS", "0.004"))


class Tally(BaseModel):
    count: int = 0
    total: int = 0


class Counter(JsonMqttConsumer):
    state_model = Tally
    state_name = "counting"

    async def receive_json(self, data: Any, message: Any) -> None:
        await asyncio.sleep(WORK_SECONDS)
        self.state.count += 1
        self.state.total += int(data["seq"])


application = Counter.as_asgi()
