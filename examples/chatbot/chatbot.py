"""A chatbot: it echoes what is said to it, and its ``count`` command says how often it did
in this conversation (each conversation has its own consumer, so its own count). The count
is the consumer's durable state (``state_model``; the YAML's ``state:`` section stores it),
so it survives a restart of the daemon. ``remind <n> <unit> <text>`` sets a timer of the
conversation's scope (``set_timer``), stored with that state, so a reminder set before a
restart is posted after it (late, if it fell due meanwhile).

Run it in the terminal with ``asgi-gateway run examples/chatbot/gateway.yaml`` and type;
``:help`` lists the console's control lines (``:channel general``, ``:user bob``...).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from consumers import ChatConsumer, ProtocolTypeRouter, command

if TYPE_CHECKING:
    from layer.types import ChatMessageEvent


#: ``remind``'s units, in seconds.
UNITS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip


class Echoed(BaseModel):
    """What a conversation's consumer keeps across restarts."""

    echoed: int = 0
    reminders: int = 0


class EchoBot(ChatConsumer):
    """One instance per conversation: a DM, a channel, or a thread."""

    state_model = Echoed
    state_name = "chatbot.echo"

    @command("count", help="how many messages I echoed in this conversation")
    async def count(self, message: Any, args: list[str]) -> str:
        return f"{self.state.echoed} so far"

    @command("remind", help="remind this conversation later", usage="<n> <unit> <text>")
    async def remind(self, message: Any, args: list[str]) -> str:
        try:
            delay = float(args[0]) * UNITS[args[1].lower()]
        except (IndexError, KeyError, ValueError):
            return "Say: remind <n> <s|min|h|d> <text>, e.g. remind 10 min tea"
        if len(args) < 3 or not 0 < delay <= 366 * 86400:
            return "Say: remind <n> <s|min|h|d> <text>, within a year"
        self.state.reminders += 1
        text = " ".join(args[2:])
        self.set_timer(
            f"remind-{self.state.reminders}", {"type": "chatbot.remind", "text": text}, delay=delay
        )
        return f"OK, in {args[0]} {args[1]}: {text}"

    async def chatbot_remind(self, event: dict[str, Any]) -> None:
        """A reminder's timer fired (``due`` is when it was meant to)."""
        late = time.time() - event["due"]
        await self.say(
            f"Reminder: {event['text']}" + (f" (late by {late:.0f} s)" if late > 5 else "")
        )

    async def receive(self, message: ChatMessageEvent) -> None:
        addressed, text = self.address(message)  # DM, @bot, or "bot:"; mention stripped
        if addressed and text:  # a bare mention (or a blank line) has nothing to echo
            self.state.echoed += 1
            await self.reply(message, text)


application = ProtocolTypeRouter({"chat": EchoBot.as_asgi()})
