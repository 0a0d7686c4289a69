"""Faults of the Rocket.Chat gateway against RocketChatTestServer: malformed frames, a cut
or silent realtime connection, a refused reconnection, cut and failed sends, a restart, a
refused or revoked token. Nothing is lost, nothing is repeated, nothing is a traceback, and
the token never reaches a log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import test_rocketchat_helpers as helpers
from test_rocketchat_helpers import World, running

from gateways import GatewayError
from gateways.rocketchat import RocketChatGateway, RocketChatGatewayOptions
from layer.types import Receive, Scope, Send

rocketchat_world = helpers.rocketchat_world
rocketchat_options = helpers.rocketchat_options
Options = Callable[..., RocketChatGatewayOptions]

MALFORMED = [
    "not json at all",
    "[1, 2, 3]",
    '{"msg": 42}',
    '{"msg": "changed", "collection": "stream-room-messages"}',
    '{"msg": "changed", "collection": "stream-room-messages", "fields": {"args": "nope"}}',
    '{"msg": "changed", "collection": "stream-room-messages", "fields": {"args": [{"msg": "x"}]}}',
    '{"msg": "result", "id": "999", "result": null}',
]


async def test_malformed_frames_are_dropped_with_one_warning_each_and_it_goes_on(
    rocketchat_world: World, rocketchat_options: Options, caplog: pytest.LogCaptureFixture
) -> None:
    world = rocketchat_world
    caplog.set_level(logging.DEBUG)
    async with running(rocketchat_options()) as (gateway, recorder):
        for frame in MALFORMED:
            await world.server.send_raw(frame)
        await world.server.post(world.general, world.alice, "still here")
        await recorder.wait_messages(1)
        assert gateway.connected
        assert gateway.sessions_opened == 1
    assert recorder.texts() == ["still here"]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 6, [r.getMessage() for r in warnings]  # the stray result is fine
    assert not any(r.exc_info for r in caplog.records)
    assert world.server.token not in caplog.text


async def test_a_cut_connection_loses_nothing_and_repeats_nothing(
    rocketchat_world: World, rocketchat_options: Options, caplog: pytest.LogCaptureFixture
) -> None:
    world = rocketchat_world
    server = world.server
    caplog.set_level(logging.DEBUG)
    async with running(rocketchat_options()) as (gateway, recorder):
        await server.post(world.general, world.alice, "say one")
        await server.wait_for_sent(1)
        server.refuse_connections = True
        await server.drop_connections()
        await server.post(world.general, world.alice, "say two")  # streamed to no one
        await server.post(world.dm, world.alice, "say three")
        await server.post(world.general, world.bob, "say four")
        server.refuse_connections = False
        await server.wait_for_sent(4, within=15)
        await server.post(world.general, world.alice, "say five")
        await server.wait_for_sent(5)
        assert gateway.sessions_opened >= 2
    assert recorder.texts() == ["say one", "say two", "say three", "say four", "say five"]
    # Once each; in order within each conversation (the DM's answer may come first).
    assert sorted(m["msg"] for m in server.sent) == sorted(["one", "two", "three", "four", "five"])
    general = [m["msg"] for m in server.sent if m["rid"] == world.general]
    assert general == ["one", "two", "four", "five"]
    assert server.token not in caplog.text
    assert not any(r.exc_info for r in caplog.records)


async def test_a_silent_server_is_pinged_and_left_for_a_new_connection(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    world = rocketchat_world
    server = world.server
    options = rocketchat_options(ping_interval=0.2, api_timeout=0.5)
    async with running(options) as (gateway, recorder):
        server.mute = True
        await server.post(world.general, world.alice, "while silent")  # not streamed
        async with asyncio.timeout(10):
            while not any(f == {"msg": "ping"} for s in server.sessions for f in s.frames):
                await asyncio.sleep(0.05)
        server.mute = False
        await recorder.wait_messages(1, within=10)
        assert gateway.sessions_opened >= 2
    assert recorder.texts() == ["while silent"]


@pytest.mark.parametrize("fault", ["cut", "500"])
async def test_a_send_cut_or_failed_on_the_way_is_posted_once(
    rocketchat_world: World, rocketchat_options: Options, fault: str
) -> None:
    world = rocketchat_world
    server = world.server
    if fault == "cut":
        server.cut_next_send()
    else:
        server.fail_next_send(500)
    async with running(rocketchat_options()) as (_, recorder):
        await server.post(world.general, world.alice, "say once")
        await server.wait_for_sent(1)
        await server.post(world.general, world.alice, "say after")
        await server.wait_for_sent(2)
    assert [m["msg"] for m in server.sent] == ["once", "after"]
    assert not recorder.errors


async def test_a_send_that_keeps_failing_is_a_gateway_error(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    world = rocketchat_world
    world.server.fail_next_send(503, times=3)
    async with running(rocketchat_options(send_retries=2)) as (_, recorder):
        await world.server.post(world.general, world.alice, "say never")
        await recorder.wait(lambda: bool(recorder.errors))
    assert isinstance(recorder.errors[0], GatewayError)
    assert "3 times" in str(recorder.errors[0])
    assert world.server.sent == []


async def test_a_restart_fetches_what_was_missed_and_skips_what_was_handled(
    rocketchat_world: World, rocketchat_options: Options, tmp_path: Path
) -> None:
    world = rocketchat_world
    server = world.server
    options = rocketchat_options(state_path=tmp_path / "rocketchat.json")
    async with running(options) as (_, first):
        await server.post(world.general, world.alice, "say before")
        await server.wait_for_sent(1)
        await first.wait_messages(1)
    await server.post(world.general, world.alice, "say while down")
    await server.post(world.dm, world.alice, "say in the DM")
    state = json.loads((tmp_path / "rocketchat.json").read_text())
    assert world.general in state["rooms"]
    async with running(options) as (_, second):
        await server.wait_for_sent(3)
        await server.post(world.general, world.alice, "say after")
        await server.wait_for_sent(4)
    assert sorted(second.texts()) == ["say after", "say in the DM", "say while down"]
    assert sorted(m["msg"] for m in server.sent) == ["after", "before", "in the DM", "while down"]


async def test_a_message_not_handled_before_a_stop_is_delivered_after_the_restart(
    rocketchat_world: World, rocketchat_options: Options, tmp_path: Path
) -> None:
    world = rocketchat_world
    server = world.server
    options = rocketchat_options(state_path=tmp_path / "rocketchat.json", disconnect_grace=0.2)
    stuck = asyncio.Event()

    async def hangs(scope: Scope, receive: Receive, send: Send) -> None:
        while (event := await receive())["type"] != "chat.disconnect":
            if event["type"] == "chat.message":
                stuck.set()
                await asyncio.Event().wait()  # never handles it: cancelled at the stop

    async with running(options, hangs):
        await server.post(world.general, world.alice, "say later")
        async with asyncio.timeout(10):
            await stuck.wait()
    async with running(options) as (_, recorder):
        await server.wait_for_sent(1)
    assert recorder.texts() == ["say later"]
    assert [m["msg"] for m in server.sent] == ["later"]


async def test_a_refused_token_fails_the_start_without_showing_it(
    rocketchat_world: World, rocketchat_options: Options
) -> None:
    wrong = "W" * 43
    gateway = RocketChatGateway("rocketchat", helpers.Recorder(), rocketchat_options(token=wrong))
    with pytest.raises(GatewayError, match="refused the token") as caught:
        await gateway.start()
    assert wrong not in str(caught.value)
    assert rocketchat_world.server.token not in str(caught.value)


async def test_a_token_revoked_while_running_fails_the_gateway(
    rocketchat_world: World, rocketchat_options: Options, caplog: pytest.LogCaptureFixture
) -> None:
    server = rocketchat_world.server
    async with running(rocketchat_options()) as (gateway, _):
        server.revoked = True
        await server.drop_connections()
        with pytest.raises(GatewayError, match="refused the token"):
            async with asyncio.timeout(10):
                await gateway.wait_failed()
    assert server.token not in caplog.text


async def test_an_unreachable_server_fails_the_start(rocketchat_options: Options) -> None:
    options = rocketchat_options(server_url="http://127.0.0.1:9", connect_timeout=3)
    gateway = RocketChatGateway("rocketchat", helpers.Recorder(), options)
    with pytest.raises(GatewayError, match="cannot reach"):
        await gateway.start()


async def test_a_room_the_bot_left_is_forgotten_at_the_catch_up(
    rocketchat_world: World, rocketchat_options: Options, tmp_path: Path
) -> None:
    world = rocketchat_world
    path = tmp_path / "rocketchat.json"
    path.write_text(json.dumps({"rooms": {"GoneRoom1": {"mark": 1, "handled": {}}}}))
    async with running(rocketchat_options(state_path=path)) as (_, recorder):
        await world.server.post(world.general, world.alice, "still served")
        await recorder.wait_messages(1)
    assert "GoneRoom1" not in json.loads(path.read_text())["rooms"]


async def test_a_message_of_odd_shapes_is_delivered_as_far_as_it_goes(
    rocketchat_world: World, rocketchat_options: Options, caplog: pytest.LogCaptureFixture
) -> None:
    world = rocketchat_world
    odd = {"attachments": 5, "files": "x", "mentions": "y", "file": [1], "bot": None}
    async with running(rocketchat_options()) as (_, recorder):
        await world.server.post(world.general, world.alice, "odd", **odd)
        await world.server.post(world.general, world.alice, "then plain")
        await recorder.wait_messages(2)
    first = recorder.messages()[0][1]
    assert (first["text"], first["attachments"], first["mentions_bot"]) == ("odd", [], False)
    assert not any(r.exc_info for r in caplog.records)
