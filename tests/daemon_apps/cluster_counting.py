"""A test application for scope ownership across daemons: the counting consumer of
``counting.py`` (a durable tally per device, readings ``{"seq": <n>}`` applied once by their
idempotency key), which also records in the file ``CLUSTER_PROBE`` when each instance
starts and ends, with this process's id, so that a test can check that no two instances of
one scope were ever live at once."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from pydantic import BaseModel

from consumers import JsonMqttConsumer

PROBE = os.environ.get("CLUSTER_PROBE", "")
#: Seconds each reading takes to handle (a backlog builds up when readings come faster).
WORK_SECONDS = float(os.environ.get("WORK_SECONDS", "0"))


def record(what: str, key: str) -> None:
    if PROBE:
        with open(PROBE, "a", encoding="utf-8") as probe:
            probe.write(f"{what} {os.getpid()} {time.time():.6f} {key}\n")


class Tally(BaseModel):
    count: int = 0
    total: int = 0


class Counter(JsonMqttConsumer):
    state_model = Tally
    state_name = "counting"

    async def connect(self) -> None:
        record("start", self.scope["scope_key"])

    async def disconnect(self, reason: Any) -> None:
        record("end", self.scope["scope_key"])

    async def receive_json(self, data: Any, message: Any) -> None:
        if WORK_SECONDS:
            await asyncio.sleep(WORK_SECONDS)
        self.state.count += 1
        self.state.total += int(data["seq"])


application = Counter.as_asgi()
