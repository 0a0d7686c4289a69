"""Applied once, end to end (issue 21): a durable ``ChatConsumer`` (``state_model``, on a
``MemoryStateStore``) counts what a chat gateway delivers, and a platform's redelivery of
an event the gateway can no longer tell apart (the gateway restarted in between, or its
memory of recent ids is full) changes no count: the event's ``idempotency_key``, made of
the platform's own id, is skipped by the consumer (``docs/state.md``, *Applied once*)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel

from consumers import ChatConsumer
from gateways.slack import SlackGateway
from gateways.telegram import TelegramGateway, TelegramGatewayOptions
from gateways.testing import free_port
from gateways.testing.slack_server import SlackTestServer, app_mention, message, reaction
from gateways.testing.telegram import TelegramTestServer
from layer.state import MemoryStateStore, StateKey
from layer.types import ChatMessageEvent, ChatReactionEvent

pytestmark = pytest.mark.timeout(60)

SECRET = "hook-Secret_123"


class Tally(BaseModel):
    """What the consumer keeps: the texts it received, and how many reactions."""

    texts: list[str] = []
    reactions: int = 0


class TallyBot(ChatConsumer):
    """Counts every message and reaction of its conversation, durably."""

    state_model = Tally
    state_name = "tests.tally"

    async def receive(self, message: ChatMessageEvent) -> None:
        self.state.texts.append(message["text"])

    async def receive_reaction(self, message: ChatReactionEvent) -> None:
        self.state.reactions += 1


async def tally(store: MemoryStateStore, gateway: str, scope_key: str) -> dict[str, Any]:
    """The stored state of one conversation (``{}`` before its first event)."""
    found = await store.load(StateKey("tests.tally", gateway, scope_key))
    return {} if found is None else dict(json.loads(found.data)["state"])


async def until(
    store: MemoryStateStore,
    gateway: str,
    scope_key: str,
    done: Callable[[dict[str, Any]], bool],
    within: float = 10.0,
) -> dict[str, Any]:
    """The conversation's stored state once ``done`` holds for it; fails after ``within`` s."""
    async with asyncio.timeout(within):
        while not done(state := await tally(store, gateway, scope_key)):
            await asyncio.sleep(0.02)
    return state


def deduplicated(gateway: str) -> float:
    """How many events durable consumers of ``gateway`` skipped as applied already."""
    value = REGISTRY.get_sample_value(
        "asgi_gateway_events_deduplicated_total", {"gateway": gateway}
    )
    return value or 0.0


async def started(gateway: Any) -> Any:
    async with asyncio.timeout(10):
        await gateway.start()
    return gateway


async def stopped(gateway: Any) -> None:
    async with asyncio.timeout(15):
        await gateway.stop(drain_timeout=2)


# -- Slack --------------------------------------------------------------------------------


async def test_slack_retrying_to_a_restarted_gateway_changes_no_count(
    slack_server: SlackTestServer, slack_options: Any, run_gateway: Any
) -> None:
    store = MemoryStateStore()
    app = TallyBot.as_asgi(state_store=store)
    first = await started(SlackGateway("slack", app, slack_options()))
    try:
        said = message("C0CHAN0001", "once")
        once = await slack_server.send_event(said)
        liked = await slack_server.send_event(reaction("C0CHAN0001", said["ts"], "heart"))
        mention = message("C0CHAN0001", f"<@{slack_server.bot_user_id}> hi")
        await slack_server.send_event(mention)
        expected = {"texts": ["once", mention["text"]], "reactions": 1}
        await until(store, "slack", "C0CHAN0001", lambda s: s == expected)
    finally:
        await stopped(first)
    # A new process: its memory of recent event ids is empty.
    await run_gateway(SlackGateway("slack", app, slack_options()))
    before = deduplicated("slack")
    # Slack retries two events (their acks did not reach it in time), and sends the mention
    # again as app_mention (an event of its own, with an event_id of its own).
    await slack_server.redeliver(once, reason="timeout")
    await slack_server.redeliver(liked, reason="timeout")
    await slack_server.send_event(app_mention("C0CHAN0001", mention["text"], ts=mention["ts"]))
    await slack_server.send_event(message("C0CHAN0001", "after"))
    state = await until(store, "slack", "C0CHAN0001", lambda s: s["texts"][-1:] == ["after"])
    assert state == {"texts": ["once", mention["text"], "after"], "reactions": 1}
    assert deduplicated("slack") == before + 3


async def test_slack_retrying_what_the_gateway_forgot_changes_no_count(
    slack_server: SlackTestServer, slack_options: Any, run_gateway: Any
) -> None:
    """``dedupe_size: 1``: the gateway remembers one event id; the consumer, every key of
    its ``applied_window``."""
    store = MemoryStateStore()
    await run_gateway(
        SlackGateway("slack", TallyBot.as_asgi(state_store=store), slack_options(dedupe_size=1))
    )
    before = deduplicated("slack")
    one = await slack_server.send_event(message("C0CHAN0001", "one"))
    await slack_server.send_event(message("C0CHAN0001", "two"))
    await until(store, "slack", "C0CHAN0001", lambda s: s.get("texts") == ["one", "two"])
    await slack_server.redeliver(one, reason="timeout")
    await slack_server.send_event(message("C0CHAN0001", "three"))
    state = await until(store, "slack", "C0CHAN0001", lambda s: s["texts"][-1:] == ["three"])
    assert state["texts"] == ["one", "two", "three"]
    assert deduplicated("slack") == before + 1


# -- Telegram ------------------------------------------------------------------------------


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramTestServer]:
    async with TelegramTestServer.started() as server:
        yield server


def webhook_gateway(telegram: TelegramTestServer, app: Any) -> TelegramGateway:
    port = free_port()
    options = TelegramGatewayOptions(
        token=telegram.token,
        api_url=telegram.api_url,
        mode="webhook",
        url=f"http://127.0.0.1:{port}/telegram/hook",
        secret_token=SECRET,
        port=port,
        webhook_wait=5,
    )
    return TelegramGateway("telegram", app, options)


async def test_telegram_sending_an_update_again_to_a_restarted_gateway_changes_no_count(
    telegram: TelegramTestServer, run_gateway: Any
) -> None:
    """Telegram sends an update again until it sees a 2xx: one whose answer was lost on the
    way reaches the next process, which has no ``state_path`` to remember it by."""
    alice = telegram.add_user(5001, "Alice")
    store = MemoryStateStore()
    app = TallyBot.as_asgi(state_store=store)
    first = await started(webhook_gateway(telegram, app))
    try:
        update = telegram.post_message(alice, alice, "once")
        await telegram.wait_confirmed(update)
        await until(store, "telegram", "5001", lambda s: s.get("texts") == ["once"])
    finally:
        await stopped(first)
    second = await run_gateway(webhook_gateway(telegram, app))
    before = deduplicated("telegram")
    url = second.webhook_url
    assert url is not None
    again = await telegram.post_raw(url, json.dumps(update).encode(), secret=SECRET)
    assert again.status == 200
    telegram.post_message(alice, alice, "after")
    state = await until(store, "telegram", "5001", lambda s: s["texts"][-1:] == ["after"])
    assert state["texts"] == ["once", "after"]
    assert deduplicated("telegram") == before + 1
