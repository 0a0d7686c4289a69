"""Faults the Mattermost gateway rides out with no lost and no doubled answer: the
WebSocket cut mid-stream (resumed by ``seq``), a server that forgot the session (a new
``hello``: missed posts fetched over REST), a gap in ``seq``, 429s with their headers, 5xx,
an answer cut off after the post was made, a restart of the gateway (``state_path``),
malformed frames, and a token revoked while running."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import test_mattermost_helpers as helpers
from test_mattermost_helpers import World, eventually, running

from gateways.base import GatewayError
from gateways.mattermost import MattermostGatewayOptions
from gateways.testing.mattermost import CREATE_POST

Options = Callable[..., MattermostGatewayOptions]

# The shared fixtures (tests/gateways/test_mattermost_helpers.py).
mattermost_world = helpers.mattermost_world
mattermost_options = helpers.mattermost_options


async def _answered_once(world: World, expected: list[str]) -> None:
    await world.server.wait_for_sent(len(expected), within=20)
    await world.server.post(world.town, world.alice, "say last")
    await world.server.wait_for_sent(len(expected) + 1, within=10)
    answers = Counter(s.message for s in world.server.sent)
    assert answers == Counter([*expected, "last"])  # each once: none lost, none doubled


async def test_a_connection_cut_mid_stream_is_resumed_and_every_post_answered_once(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    channels = [mattermost_world.town, mattermost_world.off_topic, mattermost_world.dm]
    expected = [f"n{i}" for i in range(18)]
    async with running(mattermost_options()) as (gateway, app):
        for number, text in enumerate(expected):
            if number == 6:
                await server.drop_websocket(abrupt=True)  # the client is away ...
            if number == 12:
                await server.wait_ready(resumes=1, within=15)  # ... until it resumed
            channel = channels[number % len(channels)]
            await server.post(channel, mattermost_world.alice, f"say {text}")
        await _answered_once(mattermost_world, expected)
        assert server.hellos == 1  # resumed, never a new session
        assert any(s.replayed > 0 for s in server.sessions.values())
        delivered = Counter(e["text"] for _, e in app.messages())
        assert all(count == 1 for count in delivered.values()), delivered
        assert gateway.connected
        for index, channel in enumerate(channels):  # per channel, in the order posted
            in_channel = [s.message for s in server.sent if s.channel_id == channel]
            posted = expected[index :: len(channels)] + (["last"] if index == 0 else [])
            assert in_channel == posted


async def test_posts_made_while_the_server_forgot_the_session_are_fetched(
    mattermost_world: World, mattermost_options: Options, caplog: pytest.LogCaptureFixture
) -> None:
    server = mattermost_world.server
    caplog.set_level(logging.INFO, "gateways.mattermost")
    async with running(mattermost_options()):
        await server.post(mattermost_world.town, mattermost_world.alice, "say before")
        await server.wait_for_sent(within=10)
        await server.forget_sessions()  # as a server restart: no resume is possible
        await server.post(mattermost_world.town, mattermost_world.alice, "say while away")
        await server.post(mattermost_world.dm, mattermost_world.alice, "say in the dm")
        await server.wait_ready(hellos=2, within=15)
        await _answered_once(mattermost_world, ["before", "while away", "in the dm"])
    assert "a new Mattermost WebSocket session; fetching missed posts" in caplog.text
    assert server.token not in caplog.text


async def test_a_gap_in_seq_fetches_the_posts_missed(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    async with running(mattermost_options()):
        server.new_post(mattermost_world.town, mattermost_world.alice["id"], "say lost event")
        server.skip_seq()  # its posted event never arrives
        await server.post(mattermost_world.off_topic, mattermost_world.bob, "say next")
        await _answered_once(mattermost_world, ["lost event", "next"])


async def test_a_429_is_waited_out_and_the_post_made_once(
    mattermost_world: World, mattermost_options: Options, caplog: pytest.LogCaptureFixture
) -> None:
    server = mattermost_world.server
    caplog.set_level(logging.INFO, "gateways.mattermost")
    async with running(mattermost_options()):
        server.fail_next(CREATE_POST, 429, retry_after=0.3, times=2)
        server.fail_next(CREATE_POST, 502)
        await server.post(mattermost_world.town, mattermost_world.alice, "say patiently")
        await _answered_once(mattermost_world, ["patiently"])
    statuses = [c.status for c in server.calls if c.route == CREATE_POST]
    assert statuses[:4] == [429, 429, 502, 201]
    assert "429, retrying in 0.30 s" in caplog.text


async def test_a_429_longer_than_max_rate_limit_is_an_error_for_the_application(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    async with running(mattermost_options(max_rate_limit=1)) as (_, app):
        server.fail_next(CREATE_POST, 429, retry_after=30)
        await server.post(mattermost_world.town, mattermost_world.alice, "say later")
        await app.wait(lambda: bool(app.errors))
        assert "asked to wait 30.0 s, over max_rate_limit" in str(app.errors[0])
        assert isinstance(app.errors[0], GatewayError)


async def test_the_server_rate_limit_is_kept(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    async with running(mattermost_options()):
        server.rate_limit = (3, 0.5)
        for number in range(6):
            await server.post(mattermost_world.town, mattermost_world.alice, f"say r{number}")
        await _answered_once(mattermost_world, [f"r{n}" for n in range(6)])
    assert any(c.status == 429 for c in server.calls)


async def test_an_answer_cut_off_after_the_post_was_made_is_not_posted_twice(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    async with running(mattermost_options()):
        server.cut_next(CREATE_POST)
        await server.post(mattermost_world.town, mattermost_world.alice, "say once")
        await _answered_once(mattermost_world, ["once"])
    creates = [c for c in server.calls if c.route == CREATE_POST]
    assert creates[0].status == 0  # cut off
    assert creates[0].body["pending_post_id"] == creates[1].body["pending_post_id"]


async def test_a_restart_catches_up_what_was_posted_meanwhile_and_repeats_nothing(
    mattermost_world: World, mattermost_options: Options, tmp_path: Path
) -> None:
    server = mattermost_world.server
    state = tmp_path / "mattermost-state.json"
    async with running(mattermost_options(state_path=state)):
        await server.post(mattermost_world.town, mattermost_world.alice, "say one")
        await server.post(mattermost_world.town, mattermost_world.alice, "say two")
        await server.wait_for_sent(2, within=10)
        await eventually(lambda: state.exists() and "since" in state.read_text())
    await server.post(mattermost_world.town, mattermost_world.alice, "say while down")
    await server.post(mattermost_world.dm, mattermost_world.alice, "say dm while down")
    async with running(mattermost_options(state_path=state)) as (_, app):
        await _answered_once(mattermost_world, ["one", "two", "while down", "dm while down"])
        assert [e["text"] for _, e in app.messages()] == [
            "say while down",
            "say dm while down",
            "say last",
        ]


async def test_malformed_frames_are_dropped_with_one_line_each(
    mattermost_world: World, mattermost_options: Options, caplog: pytest.LogCaptureFixture
) -> None:
    server = mattermost_world.server
    where = {"channel_id": mattermost_world.town}
    async with running(mattermost_options()):
        caplog.set_level(logging.WARNING, "gateways.mattermost")
        await server.send_raw("not json at all")
        await server.send_raw("[1, 2]")
        await server.broadcast("posted", {"post": "{broken"}, where, {server.bot_id})
        await server.broadcast("posted", "not a dict", where, {server.bot_id})  # type: ignore[arg-type]
        await server.broadcast("reaction_added", {"reaction": "[]"}, where, {server.bot_id})
        await server.broadcast(
            "posted", {"post": {"id": 5, "channel_id": []}}, where, {server.bot_id}
        )
        await server.post(mattermost_world.town, mattermost_world.alice, "say still here")
        await server.wait_for_sent(within=10)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 6, [r.getMessage() for r in warnings]
    assert all(r.exc_info is None for r in warnings)
    assert "Traceback" not in caplog.text


async def test_a_token_revoked_while_running_fails_the_gateway(
    mattermost_world: World, mattermost_options: Options
) -> None:
    server = mattermost_world.server
    async with running(mattermost_options()) as (gateway, _):
        token = server.token
        server.token = "z" * 26
        await server.drop_websocket()
        with pytest.raises(GatewayError, match="refused the token") as caught:
            async with asyncio.timeout(15):
                await gateway.wait_failed()
        assert token not in str(caught.value)


async def test_a_failed_catch_up_is_tried_again(
    mattermost_world: World, mattermost_options: Options, caplog: pytest.LogCaptureFixture
) -> None:
    server = mattermost_world.server
    caplog.set_level(logging.WARNING, "gateways.mattermost")
    async with running(mattermost_options(max_retries=0)):
        await server.forget_sessions()
        server.fail_next("GET /users/me/teams", 502)
        await server.post(mattermost_world.town, mattermost_world.alice, "say fetched")
        await _answered_once(mattermost_world, ["fetched"])
    assert "fetching the missed posts failed" in caplog.text
