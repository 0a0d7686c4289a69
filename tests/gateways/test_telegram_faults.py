"""Faults between the Telegram gateway and the Bot API, with aiogram unchanged against
TelegramTestServer: 429 ``retry_after`` honoured, long polls dropped mid-stream, 5xx, and
stops and restarts; no update is lost and no reply is sent twice."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateways.base import GatewayError
from gateways.telegram import TelegramGateway, TelegramGatewayOptions
from gateways.testing.telegram import TelegramTestServer


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramTestServer]:
    async with TelegramTestServer.started() as server:
        yield server


def make(telegram: TelegramTestServer, app: Any, **overrides: Any) -> TelegramGateway:
    values: dict[str, Any] = {
        "token": telegram.token,
        "api_url": telegram.api_url,
        "poll_timeout": 1,
        "api_timeout": 5,
        "reconnect": {"initial": 0.05, "maximum": 0.2},
    }
    values.update(overrides)
    return TelegramGateway("telegram", app, TelegramGatewayOptions(**values))


async def echo(log: Any, event: dict[str, Any]) -> None:
    if event["type"] == "chat.message":
        await log.send({"type": "chat.send", "text": f"echo {event['text']}"})


def replies(telegram: TelegramTestServer) -> collections.Counter[str]:
    return collections.Counter(sent.text for sent in telegram.sent)


async def test_a_reply_answered_429_is_sent_once_after_retry_after(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    await run_gateway(make(telegram, recording_app(echo)))
    telegram.fail_next("sendMessage", retry_after=1)
    telegram.post_message(alice, alice, "hello")
    sent = await telegram.wait_for_sent(within=10)
    assert sent.text == "echo hello"
    calls = telegram.calls_to("sendMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[0].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    await asyncio.sleep(0.3)
    assert len(telegram.sent) == 1


async def test_a_reply_still_rate_limited_after_the_retries_is_a_clear_error(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    app = recording_app(echo)
    await run_gateway(make(telegram, app, rate_limit_retries=1, max_retry_after=5))
    telegram.fail_next("sendMessage", retry_after=1, times=2)
    telegram.post_message(alice, alice, "one")
    await app.wait_for(lambda: bool(app.logs and app.logs[0].errors), within=10)
    error = app.logs[0].errors[0]
    assert isinstance(error, GatewayError)
    assert "rate limited sendMessage" in str(error)
    telegram.fail_next("sendMessage", retry_after=3600)
    telegram.post_message(alice, alice, "two")
    await app.wait_for(lambda: len(app.logs[0].errors) == 2, within=10)
    assert "retry after 3600 s" in str(app.logs[0].errors[1])
    assert telegram.sent == []


async def test_long_polls_dropped_mid_stream_lose_and_double_nothing(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    bob = telegram.add_user(5002, "Bob")
    await run_gateway(make(telegram, recording_app(echo)))
    for number in range(30):
        person = alice if number % 2 else bob
        telegram.post_message(person, person, str(number))
        if number % 5 == 2:
            telegram.drop_next("getUpdates")
        if number % 7 == 3:
            telegram.fail_next("getUpdates", error_code=502)
        if number % 9 == 4:
            telegram.fail_next("sendMessage", retry_after=1)
        await asyncio.sleep(0.02)
    await telegram.wait_until(
        lambda: len(telegram.confirmed) == 30, "every update confirmed", within=20
    )
    await telegram.wait_for_sent(30, within=10)
    assert [c for c in telegram.calls_to("getUpdates") if c.status == 0], "no poll dropped"
    assert [c for c in telegram.calls_to("getUpdates") if c.status == 502]
    assert [c for c in telegram.calls_to("sendMessage") if c.status == 429]
    assert replies(telegram) == {f"echo {n}": 1 for n in range(30)}
    for person in (alice, bob):  # each chat's replies in the order of its messages
        texts = [s.text for s in telegram.sent_to(person["id"])]
        assert texts == sorted(texts, key=lambda t: int(t.split()[1]))


async def test_a_reply_whose_connection_dropped_is_an_error_and_not_sent_twice(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    app = recording_app(echo)
    await run_gateway(make(telegram, app))
    telegram.drop_next("sendMessage", processed=True)  # sent, but the answer is lost
    telegram.post_message(alice, alice, "once")
    await app.wait_for(lambda: bool(app.logs and app.logs[0].errors), within=10)
    error = app.logs[0].errors[0]
    assert isinstance(error, GatewayError)
    assert "may have reached Telegram" in str(error)
    telegram.post_message(alice, alice, "next")
    await telegram.wait_for_sent(2)
    assert replies(telegram) == {"echo once": 1, "echo next": 1}


async def test_a_poll_answered_429_waits_retry_after_then_resumes(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    alice = telegram.add_user(5001, "Alice")
    gateway = await run_gateway(make(telegram, recording_app(echo)))
    await telegram.wait_for_call("getUpdates")
    telegram.fail_next("getUpdates", retry_after=1)
    telegram.post_message(alice, alice, "later")
    await telegram.wait_for_sent(within=10)
    assert replies(telegram) == {"echo later": 1}
    assert [c.status for c in telegram.calls_to("getUpdates")].count(429) == 1
    assert gateway.connected


@pytest.mark.parametrize("keep_state", [True, False])
async def test_a_restart_hands_an_update_handled_before_it_again_only_without_state(
    telegram: TelegramTestServer, recording_app: Any, tmp_path: Path, keep_state: bool
) -> None:
    alice = telegram.add_user(5001, "Alice")
    state = {"state_path": tmp_path / "telegram.json"} if keep_state else {}
    first = make(telegram, recording_app(echo), poll_timeout=30, **state)
    await first.start()
    update = telegram.post_message(alice, alice, "once")
    await telegram.wait_for_sent()
    # Handled, but not confirmed yet: the long poll that would confirm it waits; the
    # daemon's last getUpdates fails as if the process died first.
    assert telegram.updates == [update]
    telegram.fail_next("getUpdates", error_code=500)
    await first.stop(drain_timeout=2)
    assert telegram.updates == [update]

    second = make(telegram, recording_app(echo), **state)
    await second.start()
    try:
        await telegram.wait_confirmed(update, within=10)
        await asyncio.sleep(0.3)
    finally:
        await second.stop(drain_timeout=2)
    assert replies(telegram) == {"echo once": 1 if keep_state else 2}
    if keep_state:
        assert (tmp_path / "telegram.json").read_text().startswith('{"last_update_id": ')


async def test_an_update_not_handled_when_the_gateway_stops_goes_to_the_next_start(
    telegram: TelegramTestServer, recording_app: Any, tmp_path: Path
) -> None:
    alice = telegram.add_user(5001, "Alice")
    stuck = asyncio.Event()

    async def hang(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message" and event["text"] == "slow":
            stuck.set()
            await asyncio.Event().wait()  # never returns: cancelled at the stop
        await echo(log, event)

    state = tmp_path / "telegram.json"
    first = make(telegram, recording_app(hang), state_path=state)
    await first.start()
    update = telegram.post_message(alice, alice, "slow")
    async with asyncio.timeout(5):
        await stuck.wait()
    await first.stop(drain_timeout=0.2)
    assert update["update_id"] not in telegram.confirmed

    app = recording_app(echo)
    second = make(telegram, app, state_path=state)
    await second.start()
    try:
        sent = await telegram.wait_for_sent(within=10)
        await telegram.wait_confirmed(update, within=10)
    finally:
        await second.stop(drain_timeout=2)
    assert sent.text == "echo slow"


async def test_a_state_file_that_is_not_the_gateways_fails_the_start(
    telegram: TelegramTestServer, recording_app: Any, tmp_path: Path
) -> None:
    state = tmp_path / "telegram.json"
    state.write_text("not json")
    gateway = make(telegram, recording_app(), state_path=state)
    with pytest.raises(GatewayError, match="can't be read as the gateway's state"):
        await gateway.start()
    await gateway.stop()
