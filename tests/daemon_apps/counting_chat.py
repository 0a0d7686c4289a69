"""A test application for scope ownership on a chat platform: one durable consumer per
conversation that counts the messages it was sent and answers each with the count."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from consumers import ChatConsumer


class Seen(BaseModel):
    count: int = 0


class Counting(ChatConsumer):
    state_model = Seen
    state_name = "counting_chat"

    async def receive(self, message: Any) -> None:
        self.state.count += 1
        await self.say(str(self.state.count))


application = Counting.as_asgi()
