"""A test chatbot for the console gateway: ``whoami`` says who and where the message came
from, ``count`` counts this conversation's messages, messages addressed to the bot are echoed
(as a reply, with an ``eyes`` reaction), and reactions are reported."""

from __future__ import annotations

from typing import Any

from consumers import ChatConsumer, ProtocolTypeRouter, command


class ConsoleBot(ChatConsumer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages = 0

    @command("whoami", help="who and where you are")
    async def whoami(self, message: Any, args: list[str]) -> str:
        conversation = self.conversation
        return (
            f"{message['user']['name']} in {conversation['kind']} "
            f"{conversation['name'] or conversation['id']} (key {self.scope['scope_key']})"
        )

    @command("count", help="messages in this conversation")
    async def count(self, message: Any, args: list[str]) -> str:
        self.messages += 1
        return f"message {self.messages} here"

    async def receive(self, message: Any) -> None:
        self.messages += 1
        addressed, text = self.address(message)
        if addressed:
            await self.reply(message, f"echo: {text}", reply_to=message["id"])
            await self.react(message["id"], "eyes")

    async def receive_reaction(self, message: Any) -> None:
        await self.say(f"{message['user']['name']} reacted {message['reaction']}")


application = ProtocolTypeRouter({"chat": ConsoleBot.as_asgi()})
