"""Deliveries confirmed once handled (gateways.tracking), on a transport-less chat gateway:
each tracked event is confirmed once, when handled; an instance cancelled with tracked events
confirms none and hands them to the next instance, here, or in a cluster through the
ownership again (a stale daemon must not reopen the scope on its own)."""

from __future__ import annotations

import asyncio
from typing import Any

from gateways.base import ScopeInstance
from gateways.chat import ChatGateway, ChatGatewayOptions
from gateways.tracking import TrackedEvent
from layer.types import ChatSendMessageEvent, Message, Scope


class Delivered(TrackedEvent):
    __slots__ = ("number",)

    def __init__(self, number: int, event: dict[str, Any]) -> None:
        super().__init__(event)
        self.number = number


class TrackingChat(ChatGateway):
    """A chat platform whose deliveries are confirmed once handled (``confirmed``)."""

    platform = "track"
    tracks_handling = True

    def __init__(self, application: Any) -> None:
        super().__init__("track", application, ChatGatewayOptions())
        self.confirmed: list[int] = []

    async def start_transport(self) -> None:
        self.bot = {"id": "B1", "name": "bot"}

    async def close_transport(self) -> None:
        pass

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        pass

    def tracked_done(self, event: TrackedEvent) -> None:
        if isinstance(event, Delivered):
            self.confirmed.append(event.number)

    async def post(self, number: int, text: str) -> str:
        key, conversation = self.conversation_for(
            channel_id="C1", kind="group", name="general", thread_id=None, user_id="U1"
        )
        event = {
            "type": "chat.message",
            "id": str(number),
            "text": text,
            "user": {"id": "U1", "name": None, "is_bot": False},
            "thread_id": None,
            "mentions_bot": False,
            "attachments": [],
            "raw": {},
        }
        await self.dispatch_chat(key, conversation, Delivered(number, event))
        return key


class Holding:
    """An application that records each message and holds the one whose text is ``hold``
    until released."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        while (event := await receive())["type"] != "chat.disconnect":
            if event["type"] == "chat.message":
                self.seen.append(event["text"])
                if event["text"] == "hold" and not self.release.is_set():
                    self.holding.set()
                    await self.release.wait()


class RecordingOwnership:
    """The cluster as the gateway sees it (``gateways.ownership.Ownership``): every scope
    may open here; each admission is recorded."""

    def __init__(self) -> None:
        self.admitted: list[tuple[str, str]] = []

    async def admit(self, gateway: Any, key: str, event: Message, scope: Any) -> bool:
        self.admitted.append((key, str(event.get("text"))))
        return True

    def released(self, gateway: str, key: str) -> None:
        pass


async def until(predicate: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_each_tracked_event_is_confirmed_once_when_handled(run_gateway: Any) -> None:
    app = Holding()
    gateway = TrackingChat(app)
    await run_gateway(gateway)
    await gateway.post(1, "one")
    await gateway.post(2, "hold")
    await gateway.post(3, "three")
    await until(app.holding.is_set)
    assert gateway.confirmed == [1]  # "hold" is in hand, "three" waits
    app.release.set()
    # Each is handled once the app asks for its next event (after "three" too).
    await until(lambda: gateway.confirmed == [1, 2, 3])


async def test_a_cancelled_instance_hands_its_tracked_events_to_a_fresh_one(
    run_gateway: Any,
) -> None:
    app = Holding()
    gateway = TrackingChat(app)
    await run_gateway(gateway)
    key = await gateway.post(1, "hold")
    await gateway.post(2, "two")
    await until(app.holding.is_set)
    first = gateway.instances[key]
    assert first.task is not None
    first.task.cancel()  # evicted or ended by a stale lease, in the middle of "hold"
    app.release.set()
    # Neither was confirmed by the cancelled instance; a fresh one handles both, in order.
    await until(lambda: app.seen == ["hold", "hold", "two"])
    assert gateway.instances[key] is not first
    await until(lambda: gateway.confirmed == [1, 2])


async def test_in_a_cluster_the_events_go_through_the_ownership_again(run_gateway: Any) -> None:
    app = Holding()
    gateway = TrackingChat(app)
    ownership = RecordingOwnership()
    gateway.ownership = ownership  # type: ignore[assignment]
    await run_gateway(gateway)
    key = await gateway.post(1, "hold")
    await gateway.post(2, "two")
    await until(app.holding.is_set)
    assert ownership.admitted == [(key, "hold")]  # the scope opened once, admitted
    first = gateway.instances[key]
    assert first.task is not None
    first.task.cancel()
    app.release.set()
    # Dispatched again: admitted anew (the owner may be another daemon now), in order.
    await until(lambda: app.seen == ["hold", "hold", "two"])
    assert ownership.admitted == [(key, "hold"), (key, "hold")]
    await until(lambda: gateway.confirmed == [1, 2])
