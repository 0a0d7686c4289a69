"""The Slack gateway in HTTP mode (the Events API): SlackTestServer POSTs signed requests to
the gateway's Request URL; Bolt checks them, the gateway dispatches what passes, once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from gateways.slack import SlackGateway
from gateways.testing.slack_server import SlackTestServer, message, reaction


async def start(run_gateway: Any, slack_options: Any, app: Any, **options: Any) -> str:
    gateway = SlackGateway("slack", app, slack_options(mode="http", app_token=None, **options))
    await run_gateway(gateway)
    assert gateway.http_url is not None
    assert gateway.http_url.endswith("/slack/events")
    return gateway.http_url


def texts(app: Any) -> list[str]:
    return [e["text"] for log in app.logs for e in log.events if e["type"] == "chat.message"]


async def test_a_signed_event_is_taken_and_dispatched(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    url = await start(run_gateway, slack_options, app)
    answer = await slack_server.post_event(
        url, message("C0CHAN0001", "hello", channel_type="channel")
    )
    assert answer.status == 200
    await app.wait_for(lambda: texts(app) == ["hello"])
    assert app.logs[0].scope["scope_key"] == "C0CHAN0001"
    # No Socket Mode in HTTP mode.
    assert slack_server.calls_to("apps.connections.open") == []


async def test_bad_signature_and_stale_timestamp_are_refused_and_nothing_dispatched(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    url = await start(run_gateway, slack_options, app)
    forged = await slack_server.post_event(url, message("C0CHAN0001", "forged"), bad_signature=True)
    stale = await slack_server.post_event(
        url, message("C0CHAN0001", "replayed"), timestamp=int(time.time()) - 600
    )
    assert (forged.status, stale.status) == (401, 401)
    # A valid request after them is the only one dispatched.
    assert (await slack_server.post_event(url, message("C0CHAN0001", "genuine"))).status == 200
    await app.wait_for(lambda: texts(app) == ["genuine"])
    await asyncio.sleep(0.2)
    assert texts(app) == ["genuine"]


async def test_a_retried_delivery_is_dispatched_once(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    url = await start(run_gateway, slack_options, app)
    event = message("C0CHAN0001", "once")
    first = await slack_server.post_event(url, event, event_id="Ev0RETRY001")
    retry = await slack_server.post_event(
        url, event, event_id="Ev0RETRY001", retry_num=1, retry_reason="http_timeout"
    )
    assert (first.status, retry.status) == (200, 200)  # a retry is acknowledged too
    liked = reaction("C0CHAN0001", event["ts"], "heart")
    for retry_num in (None, 1, 2):
        answer = await slack_server.post_event(
            url, liked, event_id="Ev0RETRY002", retry_num=retry_num
        )
        assert answer.status == 200
    assert (await slack_server.post_event(url, message("C0CHAN0001", "next"))).status == 200
    await app.wait_for(lambda: texts(app)[-1:] == ["next"])
    assert texts(app) == ["once", "next"]
    reactions = [e for log in app.logs for e in log.events if e["type"] == "chat.reaction"]
    assert [r["reaction"] for r in reactions] == ["heart"]


async def test_slash_command_and_button_over_http(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    url = await start(run_gateway, slack_options, app)
    command = await slack_server.post_command(url, "/temp", "kitchen", channel_id="C0CHAN0001")
    action = await slack_server.post_action(
        url, "refresh", value="kitchen", channel_id="C0CHAN0001", message_ts="1700000000.000100"
    )
    assert (command.status, action.status) == (200, 200)
    await app.wait_for(
        lambda: app.logs and app.logs[0].types[-2:] == ["chat.command", "chat.action"]
    )
    command_event, action_event = app.logs[0].events[-2:]
    assert (command_event["command"], command_event["text"]) == ("/temp", "kitchen")
    assert (action_event["action_id"], action_event["value"]) == ("refresh", "kitchen")
    assert action_event["message_id"] == "1700000000.000100"


async def test_a_wrongly_signed_command_is_refused(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    url = await start(run_gateway, slack_options, app)
    answer = await slack_server.post_command(url, "/temp", signing={"bad_signature": True})
    assert answer.status == 401
    await asyncio.sleep(0.2)
    assert app.logs == []


async def test_the_request_url_check_is_answered(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    """Slack checks a new Request URL with ``url_verification``: the challenge comes back."""
    url = await start(run_gateway, slack_options, recording_app())
    body = json.dumps({"token": "x", "challenge": "c0ffee", "type": "url_verification"})
    answer = await slack_server.post_signed(url, body, "application/json")
    assert answer.status == 200
    assert "c0ffee" in answer.body
