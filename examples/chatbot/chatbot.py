"""A chatbot: it echoes what is said to it, and its ``count`` command says how often it did
in this conversation (each conversation has its own consumer, so its own count). The count
is the consumer's durable state (``state_model``; the YAML's ``state:`` section stores it),
so it survives a restart of the daemon.

Run it in the terminal with ``asgi-gateway run examples/chatbot/gateway.yaml`` and type;
``:help`` lists the console's control lines (``:channel general``, ``:user bob``...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from consumers import ChatConsumer, ProtocolTypeRouter, command

if TYPE_CHECKING:
    from layer.types import ChatMessageEvent


class Echoed(BaseModel):
    """What a conversation's consumer keeps across restarts."""

    echoed: int = 0


class EchoBot(ChatConsumer):
    """One instance per conversation: a DM, a channel, or a thread."""

    state_model = Echoed
    state_name = "chatbot.echo"

    @command("count", help="how many messages I echoed in this conversation")
    async def count(self, message: Any, args: list[str]) -> str:
        return f"{self.state.echoed} so far"

    async def receive(self, message: ChatMessageEvent) -> None:
        addressed, text = self.address(message)  # DM, @bot, or "bot:"; mention stripped
        if addressed and text:  # a bare mention (or a blank line) has nothing to echo
            self.state.echoed += 1
            await self.reply(message, text)


application = ProtocolTypeRouter({"chat": EchoBot.as_asgi()})
