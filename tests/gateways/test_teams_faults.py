"""Faults of the Teams gateway: 429s waited out, a dropped connection an error and never sent
twice, a revoked token replaced once, the token cached, refused credentials failing the start,
bad bodies refused in one line, redelivered activities handled once, and a restart or a stop
mid-handling neither losing nor repeating an activity."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import test_teams_helpers as helpers

from gateways.base import GatewayError
from gateways.teams import TeamsGateway
from gateways.testing import free_port
from gateways.testing.teams import TeamsTestServer, personal, user

teams = helpers.teams
teams_options = helpers.teams_options
start_teams = helpers.start_teams


def replier(errors: list[str]) -> Callable[..., Any]:
    async def reply(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            try:
                await log.send({"type": "chat.send", "text": f"re {event['text']}"})
            except GatewayError as exc:
                errors.append(str(exc))

    return reply


async def test_a_429_is_sent_once_after_retry_after(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    errors: list[str] = []
    await start_teams(recording_app(replier(errors)))
    teams.fail_next(429, retry_after=0.2)
    alice = user("Alice")
    teams.post_message(personal(alice), alice, "one")
    assert (await teams.wait_for_sent()).text == "re one"
    assert len(teams.sent) == 1
    assert errors == []


async def test_a_429_past_the_retries_or_max_retry_after_is_a_clear_error(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    errors: list[str] = []
    app = recording_app(replier(errors))
    await start_teams(app, rate_limit_retries=1, max_retry_after=5)
    for _ in range(2):
        teams.fail_next(429, retry_after=0)
    alice = user("Alice")
    dm = personal(alice)
    teams.post_message(dm, alice, "one")
    await app.wait_for(lambda: len(errors) == 1)
    assert "429" in errors[0]
    assert "after 1 retries" in errors[0]
    teams.fail_next(429, retry_after=60)
    teams.post_message(dm, alice, "two")
    await app.wait_for(lambda: len(errors) == 2)
    assert "max_retry_after" in errors[1]
    assert teams.sent == []


async def test_a_dropped_connection_is_an_error_and_not_sent_twice(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    errors: list[str] = []
    app = recording_app(replier(errors))
    await start_teams(app)
    teams.drop_next()
    alice = user("Alice")
    dm = personal(alice)
    teams.post_message(dm, alice, "one")
    await app.wait_for(lambda: len(errors) == 1)
    assert "could not be reached" in errors[0]
    assert "not sent again" in errors[0]
    teams.post_message(dm, alice, "two")
    assert (await teams.wait_for_sent()).text == "re two"
    assert [s.text for s in teams.sent] == ["re two"]


async def test_the_token_is_cached_and_a_revoked_one_replaced_once(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    errors: list[str] = []
    await start_teams(recording_app(replier(errors)))
    alice = user("Alice")
    dm = personal(alice)
    for number in range(3):
        teams.post_message(dm, alice, f"m{number}")
    await teams.wait_for_sent(3)
    assert len(teams.token_requests) == 1
    assert teams.token_requests[0] == {
        "grant_type": "client_credentials",
        "client_id": teams.app_id,
        "scope": "https://api.botframework.com/.default",
    }
    teams.revoke_tokens()
    teams.post_message(dm, alice, "after revoke")
    assert (await teams.wait_for_sent(4)).text == "re after revoke"
    assert len(teams.token_requests) == 2
    assert len(teams.sent) == 4
    assert errors == []


async def test_a_token_near_its_expiry_is_replaced(recording_app: Any, run_gateway: Any) -> None:
    async with TeamsTestServer.started(token_lifetime=1) as teams:
        errors: list[str] = []
        options = helpers.TeamsGatewayOptions(port=0, **teams.options())
        gateway = await run_gateway(TeamsGateway("teams", recording_app(replier(errors)), options))
        teams.bot_url = gateway.endpoint_url
        alice = user("Alice")
        dm = personal(alice)
        teams.post_message(dm, alice, "one")
        await teams.wait_for_sent()
        await asyncio.sleep(0.6)  # past half of the 1 s lifetime: the cached token is renewed
        teams.post_message(dm, alice, "two")
        await teams.wait_for_sent(2)
        assert len(teams.token_requests) >= 2
        assert errors == []


async def test_refused_credentials_fail_the_start_without_the_password(
    teams: TeamsTestServer, recording_app: Any, teams_options: Any
) -> None:
    gateway = TeamsGateway("teams", recording_app(), teams_options(app_password="wrong-Secret-42"))
    with pytest.raises(GatewayError) as raised:
        await gateway.start()
    assert "refused the app's credentials" in str(raised.value)
    assert "invalid_client" in str(raised.value)
    assert "wrong-Secret-42" not in str(raised.value)
    assert "test-app-password" not in str(raised.value)


async def test_unreachable_openid_metadata_fails_the_start(
    recording_app: Any, teams_options: Any
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/openid"
    gateway = TeamsGateway("teams", recording_app(), teams_options(openid_metadata_url=closed))
    with pytest.raises(GatewayError, match="cannot fetch the OpenID keys"):
        await gateway.start()


BAD_BODIES = {
    "broken JSON": b'{"type": "message", ',
    "not an object": b'["message"]',
    "no conversation": json.dumps(
        {"type": "message", "serviceUrl": "x", "channelId": "msteams"}
    ).encode(),
    "deep": b"[" * 5000 + b"]" * 5000,
    "not UTF-8": b"\xff\xfe{",
}


@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
async def test_a_body_that_is_not_an_activity_is_a_400_in_one_line(
    teams: TeamsTestServer,
    recording_app: Any,
    start_teams: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    app = recording_app()
    await start_teams(app)
    with caplog.at_level(logging.INFO, logger="gateways"):
        answer = await teams.deliver_raw(BAD_BODIES[kind], teams.keys.token())
    assert answer.status == 400
    (line,) = [r for r in caplog.records if r.name.startswith("gateways")]
    assert line.levelno == logging.WARNING
    assert line.exc_info is None
    assert "refused (400)" in line.getMessage()
    assert app.logs == []
    alice = user("Alice")
    teams.post_message(personal(alice), alice, "still here")
    await app.wait_for(lambda: len(app.logs) == 1 and len(app.logs[0].events) == 2)


async def test_an_activity_posted_again_is_delivered_once(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    errors: list[str] = []
    app = recording_app(replier(errors))
    await start_teams(app)
    alice = user("Alice")
    activity = teams.post_message(personal(alice), alice, "once")
    await teams.wait_delivered(activity)
    again = await teams.deliver_raw(activity, teams.keys.token())
    assert again.status == 202
    teams.post_message(personal(alice), alice, "next")
    await teams.wait_for_sent(2)
    assert [s.text for s in teams.sent] == ["re once", "re next"]


@pytest.mark.parametrize("with_state", [True, False])
async def test_a_restart_repeats_an_activity_handled_before_it_only_without_state(
    teams: TeamsTestServer,
    recording_app: Any,
    teams_options: Any,
    tmp_path: Path,
    with_state: bool,
) -> None:
    state = tmp_path / "teams-state.json" if with_state else None
    alice = user("Alice")
    activity: dict[str, Any] = {}
    for run in range(2):
        errors: list[str] = []
        gateway = TeamsGateway(
            "teams", recording_app(replier(errors)), teams_options(state_path=state)
        )
        await gateway.start()
        teams.bot_url = gateway.endpoint_url
        try:
            if run == 0:
                activity = teams.post_message(personal(alice), alice, "handled")
                await teams.wait_delivered(activity)
            else:
                answer = await teams.deliver_raw(activity, teams.keys.token())
                assert answer.status == 202
                teams.post_message(personal(alice), alice, "after")
                await teams.wait_until(lambda: teams.sent[-1].text == "re after", "re after")
        finally:
            await gateway.stop(drain_timeout=2)
    expected = (
        ["re handled", "re after"] if with_state else ["re handled", "re handled", "re after"]
    )
    assert [s.text for s in teams.sent] == expected
    if state is not None:
        saved = json.loads(state.read_text())
        assert saved["service_urls"] == {personal(alice)["id"]: teams.service_url}


async def test_an_activity_in_hand_when_the_gateway_stops_goes_to_the_next_start(
    teams: TeamsTestServer, recording_app: Any, teams_options: Any
) -> None:
    hold = asyncio.Event()
    errors: list[str] = []

    async def slow(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await hold.wait()

    port = free_port()
    first = TeamsGateway("teams", recording_app(slow), teams_options(port=port))
    await first.start()
    teams.bot_url = first.endpoint_url
    alice = user("Alice")
    activity = teams.post_message(personal(alice), alice, "in hand")
    async with asyncio.timeout(5):
        while not first.ledger.pending:  # in the application's hands, not handled
            await asyncio.sleep(0.01)
    await first.stop(drain_timeout=0.5)
    assert not any(
        d.activity_id == activity["id"] and 200 <= d.status < 300 for d in teams.deliveries
    )
    second = TeamsGateway("teams", recording_app(replier(errors)), teams_options(port=port))
    await second.start()
    try:
        assert (await teams.wait_for_sent(within=10)).text == "re in hand"
        await teams.wait_delivered(activity)
    finally:
        await second.stop(drain_timeout=2)
    assert len(teams.sent) == 1


async def test_a_post_cut_mid_handling_and_sent_again_is_handled_once(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    release = asyncio.Event()

    async def slow(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await release.wait()
            await log.send({"type": "chat.send", "text": f"re {event['text']}"})

    app = recording_app(slow)
    gateway = await start_teams(app)
    alice = user("Alice")
    activity = {
        "type": "message",
        "id": "cut-1",
        "text": "cut",
        "channelId": "msteams",
        "serviceUrl": teams.service_url,
        "from": alice,
        "conversation": personal(alice),
    }
    headers = {"Authorization": f"Bearer {teams.keys.token()}"}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TimeoutError):
            async with session.post(
                gateway.endpoint_url,
                json=activity,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=0.3),
            ):
                pass
        release.set()
        again = await teams.deliver_raw(activity, teams.keys.token())
    assert again.status == 202
    assert (await teams.wait_for_sent()).text == "re cut"
    assert [e["type"] for e in app.logs[0].events].count("chat.message") == 1
    assert len(teams.sent) == 1
