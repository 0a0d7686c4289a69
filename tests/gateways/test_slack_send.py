"""What the application sends, as the Slack gateway carries it out against SlackTestServer:
chat.postMessage (threads, formats, native blocks), reactions, rate limits, refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateways.base import GatewayError
from gateways.slack import SlackGateway
from gateways.slack.options import SlackRetry
from gateways.testing.slack_server import SlackTestServer, message

Reply = Callable[[dict[str, Any]], list[dict[str, Any]]]


def replying(recording_app: Any, reply: Reply) -> Any:
    """A recording app whose instances send ``reply(event)`` for each chat.message."""

    async def on_event(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            for out in reply(event):
                await log.send(out)

    return recording_app(on_event)


async def start(run_gateway: Any, slack_options: Any, app: Any, **options: Any) -> SlackGateway:
    gateway = SlackGateway("slack", app, slack_options(**options))
    await run_gateway(gateway)
    return gateway


async def errors(app: Any, count: int = 1) -> list[BaseException]:
    await app.wait_for(lambda: sum(len(log.errors) for log in app.logs) >= count)
    return [error for log in app.logs for error in log.errors]


async def test_replies_go_to_the_thread_of_a_thread_conversation(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = replying(recording_app, lambda e: [{"type": "chat.send", "text": "re: " + e["text"]}])
    await start(run_gateway, slack_options, app)
    parent = message("C0CHAN0001", "top")
    await slack_server.send_event(parent)
    await slack_server.send_event(message("C0CHAN0001", "in thread", thread_ts=parent["ts"]))
    first = await slack_server.wait_for_call("chat.postMessage")
    second = await slack_server.wait_for_call("chat.postMessage", count=2)
    assert first.args == {"channel": "C0CHAN0001", "text": "re: top", "mrkdwn": False}
    assert second.args["text"] == "re: in thread"
    assert second.args["thread_ts"] == parent["ts"]
    assert second.token == slack_server.bot_token


async def test_reply_to_starts_a_thread_under_the_message_and_thread_names_one(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    def reply(event: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"type": "chat.send", "text": "threaded", "reply_to": event["id"]},
            {"type": "chat.send", "text": "elsewhere", "thread": "1700000000.000001"},
        ]

    app = replying(recording_app, reply)
    await start(run_gateway, slack_options, app)
    top = message("C0CHAN0001", "question")
    await slack_server.send_event(top)
    threaded = await slack_server.wait_for_call("chat.postMessage")
    elsewhere = await slack_server.wait_for_call("chat.postMessage", count=2)
    assert threaded.args["thread_ts"] == top["ts"]
    assert elsewhere.args["thread_ts"] == "1700000000.000001"


async def test_markdown_plain_and_native_blocks(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    button = {
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "Go"}}
        ],
    }

    def reply(event: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"type": "chat.send", "text": "**bold**", "format": "markdown"},
            {"type": "chat.send", "text": "*as typed*", "format": "plain"},
            {
                "type": "chat.send",
                "text": "pick",
                "native": {"blocks": [button], "unfurl_links": False},
            },
        ]

    app = replying(recording_app, reply)
    await start(run_gateway, slack_options, app)
    await slack_server.send_event(message("C0CHAN0001", "go"))
    await slack_server.wait_for_call("chat.postMessage", count=3)
    markdown, plain, native = (c.args for c in slack_server.calls_to("chat.postMessage"))
    assert markdown["text"] == "**bold**"  # the notification fallback
    assert markdown["blocks"] == [{"type": "markdown", "text": "**bold**"}]
    assert plain["mrkdwn"] is False
    assert "blocks" not in plain
    assert native["blocks"] == [button]
    assert native["unfurl_links"] is False


async def test_a_native_key_slack_does_not_take_is_refused(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = replying(
        recording_app, lambda e: [{"type": "chat.send", "text": "x", "native": {"channel": "C9"}}]
    )
    await start(run_gateway, slack_options, app)
    await slack_server.send_event(message("C0CHAN0001", "go"))
    [error] = await errors(app)
    assert isinstance(error, GatewayError)
    assert "'channel'" in str(error)
    assert slack_server.calls_to("chat.postMessage") == []


async def test_react_adds_and_removes_and_typing_is_a_clear_error(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    def reply(event: dict[str, Any]) -> list[dict[str, Any]]:
        if event["text"] == "typing":
            return [{"type": "chat.typing"}]
        return [
            {"type": "chat.react", "message_id": event["id"], "reaction": ":eyes:"},
            {"type": "chat.react", "message_id": event["id"], "reaction": "eyes", "remove": True},
        ]

    app = replying(recording_app, reply)
    await start(run_gateway, slack_options, app)
    seen = message("C0CHAN0001", "look")
    await slack_server.send_event(seen)
    added = await slack_server.wait_for_call("reactions.add")
    removed = await slack_server.wait_for_call("reactions.remove")
    expected = {"channel": "C0CHAN0001", "timestamp": seen["ts"], "name": "eyes"}
    assert added.args == expected
    assert removed.args == expected

    await slack_server.send_event(message("C0CHAN0001", "typing"))
    [error] = await errors(app)
    assert isinstance(error, GatewayError)
    assert "typing" in str(error)
    assert "Slack" in str(error)


async def test_a_reaction_already_there_is_not_an_error(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    slack_server.fail("reactions.add", "already_reacted")
    app = replying(
        recording_app, lambda e: [{"type": "chat.react", "message_id": e["id"], "reaction": "ok"}]
    )
    await start(run_gateway, slack_options, app)
    await slack_server.send_event(message("C0CHAN0001", "again"))
    await slack_server.wait_for_call("reactions.add")
    await slack_server.send_event(message("C0CHAN0001", "sentinel"))
    await slack_server.wait_for_call("reactions.add", count=2)
    assert all(not log.errors for log in app.logs)


async def test_a_rate_limited_post_is_retried_after_retry_after(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    slack_server.rate_limit("chat.postMessage", times=1, retry_after=0)
    app = replying(recording_app, lambda e: [{"type": "chat.send", "text": "after the wait"}])
    await start(run_gateway, slack_options, app)
    await slack_server.send_event(message("C0CHAN0001", "hi"))
    posted = await slack_server.wait_for_call("chat.postMessage", ok=True, within=10)
    assert posted.args["text"] == "after the wait"
    statuses = [c.status for c in slack_server.calls_to("chat.postMessage")]
    assert statuses == [429, 200]
    assert [m.text for m in slack_server.posted] == ["after the wait"]
    assert all(not log.errors for log in app.logs)


async def test_rate_limit_retries_are_bounded(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    slack_server.rate_limit("chat.postMessage", times=5, retry_after=0)
    app = replying(recording_app, lambda e: [{"type": "chat.send", "text": "never"}])
    await start(run_gateway, slack_options, app, retry=SlackRetry(rate_limited=1))
    await slack_server.send_event(message("C0CHAN0001", "hi"))
    [error] = await errors(app)
    assert isinstance(error, GatewayError)
    assert "ratelimited" in str(error)
    assert [c.status for c in slack_server.calls_to("chat.postMessage")] == [429, 429]
    assert slack_server.posted == []


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel"])
async def test_slack_refusing_a_post_is_a_gateway_error(
    error: str,
    slack_server: SlackTestServer,
    slack_options: Any,
    recording_app: Any,
    run_gateway: Any,
) -> None:
    slack_server.fail("chat.postMessage", error)
    app = replying(recording_app, lambda e: [{"type": "chat.send", "text": "x"}])
    await start(run_gateway, slack_options, app)
    await slack_server.send_event(message("C0CHAN0001", "hi"))
    [caught] = await errors(app)
    assert isinstance(caught, GatewayError)
    assert error in str(caught)
    assert "chat.postMessage" in str(caught)
    assert "'C0CHAN0001'" in str(caught)  # the scope key
