"""Faults between the Zulip gateway and Zulip, against ZulipTestServer: an event queue the
server deleted (BAD_EVENT_QUEUE_ID: re-registered, what was missed fetched), 429s honoured,
long polls dropped, 5xx, refused credentials, broken events, and stops and restarts; no
message is lost, none answered twice, and the API key never reaches a log."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_zulip_helpers as helpers
from test_zulip_helpers import ALICE, BOB, GENERAL

from gateways.base import GatewayError
from gateways.testing.zulip import ZulipTestServer
from gateways.zulip import ZulipGateway

zulip_server = helpers.zulip_server
zulip_gateway = helpers.zulip_gateway

Make = Callable[..., ZulipGateway]


async def echo(log: Any, event: dict[str, Any]) -> None:
    if event["type"] == "chat.message":
        await log.send({"type": "chat.send", "text": f"echo {event['text']}"})


def replies(server: ZulipTestServer) -> collections.Counter[str]:
    return collections.Counter(sent.text for sent in server.sent)


async def test_a_lost_queue_is_registered_again_and_what_was_missed_delivered(
    zulip_server: ZulipTestServer,
    zulip_gateway: Make,
    recording_app: Any,
    run_gateway: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await run_gateway(zulip_gateway(recording_app(echo)))
    zulip_server.post_direct_message(ALICE, "before")
    await zulip_server.wait_for_sent(within=10)
    # The queue is gone, and registering again fails for a while: messages meanwhile reach
    # no queue, and must be fetched.
    zulip_server.fail_next("POST register", 500, "Internal server error", times=2)
    zulip_server.expire_queues()
    zulip_server.post_direct_message(ALICE, "while gone 1")
    zulip_server.post_stream_message(GENERAL, "t", BOB, "@**Gateway Bot** while gone 2")
    await zulip_server.wait_for_sent(3, within=15)
    zulip_server.post_direct_message(ALICE, "after")
    await zulip_server.wait_for_sent(4, within=10)
    await asyncio.sleep(0.3)
    assert replies(zulip_server) == {
        "echo before": 1,
        "echo while gone 1": 1,
        "echo @**Gateway Bot** while gone 2": 1,
        "echo after": 1,
    }
    assert [c.status for c in zulip_server.calls_to("POST register")] == [200, 500, 500, 200]
    assert any("is gone; registering a new one" in r.getMessage() for r in caplog.records)


async def test_beyond_catch_up_the_oldest_missed_messages_are_skipped(
    zulip_server: ZulipTestServer,
    zulip_gateway: Make,
    recording_app: Any,
    run_gateway: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await run_gateway(zulip_gateway(recording_app(echo), catch_up=3))
    zulip_server.post_direct_message(ALICE, "before")
    await zulip_server.wait_for_sent(within=10)
    zulip_server.fail_next("POST register", 500, "Internal server error")
    zulip_server.expire_queues()
    for number in range(5):
        zulip_server.post_direct_message(ALICE, f"missed {number}")
    await zulip_server.wait_for_sent(4, within=15)
    await zulip_server.wait_polling()
    assert [s.text for s in zulip_server.sent] == [
        "echo before",
        "echo missed 2",
        "echo missed 3",
        "echo missed 4",
    ]
    assert "more than catch_up (3) messages" in caplog.text


async def test_a_reply_answered_429_is_sent_once_after_retry_after(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    await run_gateway(zulip_gateway(recording_app(echo)))
    zulip_server.fail_next("POST messages", 429, retry_after=0.5)
    zulip_server.post_direct_message(ALICE, "hello")
    sent = await zulip_server.wait_for_sent(within=10)
    assert sent.text == "echo hello"
    assert [c.status for c in zulip_server.calls_to("POST messages")] == [429, 200]
    await asyncio.sleep(0.3)
    assert len(zulip_server.sent) == 1


async def test_a_reply_still_rate_limited_is_a_clear_error(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app(echo)
    await run_gateway(zulip_gateway(app, rate_limit_retries=1, max_retry_after=5))
    zulip_server.fail_next("POST messages", 429, retry_after=0.1, times=2)
    zulip_server.post_direct_message(ALICE, "one")
    await app.wait_for(lambda: bool(app.logs and app.logs[0].errors), within=10)
    error = app.logs[0].errors[0]
    assert isinstance(error, GatewayError)
    assert "rate limited POST /messages" in str(error)
    assert zulip_server.sent == []


async def test_dropped_and_failing_long_polls_lose_nothing(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    gateway = await run_gateway(zulip_gateway(recording_app(echo)))
    await zulip_server.wait_polling()
    zulip_server.drop_next("GET events")
    zulip_server.post_direct_message(ALICE, "one")
    await zulip_server.wait_for_sent(within=10)
    zulip_server.fail_next("GET events", 502, "Bad gateway", times=2)
    zulip_server.post_direct_message(ALICE, "two")
    await zulip_server.wait_for_sent(2, within=10)
    await zulip_server.wait_polling()
    assert replies(zulip_server) == {"echo one": 1, "echo two": 1}
    assert gateway.connected


async def test_refused_credentials_fail_the_start_without_the_key(
    zulip_server: ZulipTestServer, recording_app: Any
) -> None:
    options = helpers.options_for(zulip_server, api_key="WrongKey123")
    gateway = ZulipGateway("zulip", recording_app(), options)
    with pytest.raises(GatewayError, match="refused the bot's credentials") as caught:
        await gateway.start()
    assert "WrongKey123" not in str(caught.value)
    assert "WrongKey123" not in repr(options)


async def test_credentials_refused_while_polling_stop_the_gateway(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    gateway = await run_gateway(zulip_gateway(recording_app()))
    await zulip_server.wait_polling()
    zulip_server.fail_next("GET events", 401, "Invalid API key", code="UNAUTHORIZED")
    zulip_server.post_direct_message(ALICE, "x")
    with pytest.raises(GatewayError, match="refused the bot's credentials"):
        async with asyncio.timeout(10):
            await gateway.wait_failed()


async def test_broken_events_are_dropped_with_one_line_each(
    zulip_server: ZulipTestServer,
    zulip_gateway: Make,
    recording_app: Any,
    run_gateway: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await run_gateway(zulip_gateway(recording_app(echo)))
    await zulip_server.wait_polling()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gateways.zulip"):
        zulip_server.push_event({"type": "message", "message": {"id": 77, "type": "odd"}})
        zulip_server.push_event({"type": "message", "message": "not a dict"})
        zulip_server.push_event({"type": "reaction", "op": "add", "message_id": "x"})
        zulip_server.post_direct_message(ALICE, "still here")
        await zulip_server.wait_for_sent(within=10)
    dropped = [r for r in caplog.records if "dropped Zulip" in r.getMessage()]
    assert len(dropped) == 3, [r.getMessage() for r in caplog.records]
    assert all(r.exc_info is None for r in caplog.records)


async def test_a_restart_resumes_the_queue_without_repeats(
    zulip_server: ZulipTestServer,
    zulip_gateway: Make,
    recording_app: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = tmp_path / "zulip-state.json"
    caplog.set_level(logging.DEBUG)
    first = zulip_gateway(recording_app(echo), state_path=state)
    await first.start()
    zulip_server.post_direct_message(ALICE, "one")
    await zulip_server.wait_for_sent(within=10)
    await first.stop(drain_timeout=2)
    assert len(zulip_server.queues) == 1  # kept for the next start
    zulip_server.post_direct_message(ALICE, "two")
    second = zulip_gateway(recording_app(echo), state_path=state)
    await second.start()
    try:
        await zulip_server.wait_for_sent(2, within=10)
        await zulip_server.wait_polling()
    finally:
        await second.stop(drain_timeout=2)
    assert replies(zulip_server) == {"echo one": 1, "echo two": 1}
    assert len(zulip_server.calls_to("POST register")) == 1
    assert zulip_server.api_key not in caplog.text


async def test_a_restart_after_the_queue_expired_catches_up(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, tmp_path: Path
) -> None:
    state = tmp_path / "zulip-state.json"
    first = zulip_gateway(recording_app(echo), state_path=state)
    await first.start()
    zulip_server.post_direct_message(ALICE, "one")
    await zulip_server.wait_for_sent(within=10)
    await first.stop(drain_timeout=2)
    zulip_server.post_direct_message(ALICE, "two")
    zulip_server.post_stream_message(GENERAL, "t", BOB, "@**Gateway Bot** three")
    zulip_server.expire_queues()
    second = zulip_gateway(recording_app(echo), state_path=state)
    await second.start()
    try:
        await zulip_server.wait_for_sent(3, within=10)
        await zulip_server.wait_polling()
    finally:
        await second.stop(drain_timeout=2)
    assert replies(zulip_server) == {
        "echo one": 1,
        "echo two": 1,
        "echo @**Gateway Bot** three": 1,
    }


async def test_without_state_path_the_queue_is_deleted_at_stop(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any
) -> None:
    gateway = zulip_gateway(recording_app())
    await gateway.start()
    await zulip_server.wait_polling()
    await gateway.stop(drain_timeout=2)
    assert zulip_server.queues == {}
    assert [c.status for c in zulip_server.calls_to("DELETE events")] == [200]
