"""The Slack gateway's ``idempotency_key`` s (``docs/specs/chat.md``), from Slack's own ids,
in Socket Mode and over the Events API against SlackTestServer."""

from __future__ import annotations

from typing import Any

import pytest

from gateways.slack import SlackGateway
from gateways.testing.slack_server import SlackTestServer, message, reaction

pytestmark = pytest.mark.timeout(60)


def of_type(app: Any, kind: str) -> list[dict[str, Any]]:
    return [e for log in app.logs for e in log.events if e["type"] == kind]


async def test_each_event_carries_a_key_made_of_slacks_id(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await run_gateway(SlackGateway("slack", app, slack_options()))
    said = message("C0CHAN0001", "hello")
    await slack_server.send_event(said, event_id="Ev0MESSAGE1")
    reply = message("C0CHAN0001", "in a thread", thread_ts=said["ts"])
    await slack_server.send_event(reply)
    await slack_server.send_event(
        reaction("C0CHAN0001", said["ts"], "heart"), event_id="Ev0REACTION"
    )
    await slack_server.send_command("/temp", "kitchen")
    await slack_server.send_action("refresh", value="now", message_ts=said["ts"])
    await app.wait_for(
        lambda: bool(of_type(app, "chat.action")) and len(of_type(app, "chat.message")) == 2
    )

    # A message's key is its channel and ts, whatever the event_id that brought it.
    assert {e["text"]: e["idempotency_key"] for e in of_type(app, "chat.message")} == {
        "hello": f"slack:C0CHAN0001/{said['ts']}",
        "in a thread": f"slack:C0CHAN0001/{reply['ts']}",
    }
    [liked] = of_type(app, "chat.reaction")
    assert liked["idempotency_key"] == "slack:Ev0REACTION"
    [command] = of_type(app, "chat.command")
    assert command["idempotency_key"] == f"slack:{command['raw']['trigger_id']}"
    [action] = of_type(app, "chat.action")
    assert action["idempotency_key"] == f"slack:{action['raw']['trigger_id']}/0"
    # Two invocations, two trigger_ids: never the same key.
    await slack_server.send_command("/temp", "kitchen")
    await app.wait_for(lambda: len(of_type(app, "chat.command")) == 2)
    keys = {e["idempotency_key"] for e in of_type(app, "chat.command")}
    assert len(keys) == 2


async def test_a_block_action_with_several_actions_gives_each_its_own_key(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await run_gateway(SlackGateway("slack", app, slack_options()))
    payload = slack_server.block_actions("first")
    payload["actions"].append({**payload["actions"][0], "action_id": "second"})
    await slack_server.send_envelope("interactive", payload)
    await app.wait_for(lambda: len(of_type(app, "chat.action")) == 2)
    trigger = payload["trigger_id"]
    assert [(e["action_id"], e["idempotency_key"]) for e in of_type(app, "chat.action")] == [
        ("first", f"slack:{trigger}/0"),
        ("second", f"slack:{trigger}/1"),
    ]


async def test_an_events_api_retry_carries_the_same_key(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    """Over HTTP (``X-Slack-Retry-Num``), to another process: the retry has the key the
    first delivery had."""
    event = reaction("C0CHAN0001", "1700000000.000100", "eyes")
    keys = []
    for name, retry_num in (("first", None), ("restarted", 1)):
        app = recording_app()
        gateway = await run_gateway(SlackGateway(name, app, slack_options(mode="http")))
        url = gateway.http_url
        assert url is not None
        delivered = await slack_server.post_event(
            url, event, event_id="Ev0HTTPRETRY", retry_num=retry_num
        )
        assert delivered.status == 200
        await app.wait_for(lambda app=app: bool(of_type(app, "chat.reaction")))
        keys += [e["idempotency_key"] for e in of_type(app, "chat.reaction")]
        await gateway.stop(drain_timeout=2)
    assert keys == ["slack:Ev0HTTPRETRY", "slack:Ev0HTTPRETRY"]
