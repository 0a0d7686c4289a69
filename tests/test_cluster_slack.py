"""Two daemons on one Slack app in Socket Mode (issue 22): SlackTestServer spreads the app's
events over both daemons' connections, as Slack spreads them over an app's Socket Mode
connections, and the cluster keeps each conversation on one daemon, so that its durable
count is whole: every message of every conversation counted once, none lost."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import Daemon

from gateways.testing.slack_server import SlackTestServer, message

pytestmark = pytest.mark.timeout(120)

# An odd number: the envelopes alternate between the two connections, so that each
# conversation's messages reach both daemons (with an even number, each would stay on one).
CONVERSATIONS = [f"D0DIRECT{n:02d}" for n in range(5)]
MESSAGES = 15


def config(tmp_path: Path) -> Path:
    path = tmp_path / "slack.yaml"
    path.write_text(
        "application: counting_chat:application\n"
        "shutdown_timeout: 5\n"
        "logging:\n"
        "  level: INFO\n"
        "layer: {type: redis, options: {hosts: ['${REDIS_URL}']}}\n"
        "state: {backend: redis, hosts: ['${REDIS_URL}']}\n"
        "cluster: {lease: 2}\n"
        "gateways:\n"
        "  slack:\n"
        "    type: slack\n"
        "    mode: socket\n"
        "    bot_token: ${SLACK_BOT_TOKEN}\n"
        "    app_token: ${SLACK_APP_TOKEN}\n"
        "    base_url: ${SLACK_API_URL}\n"
    )
    return path


async def test_two_daemons_on_one_slack_app_keep_every_conversation_whole(
    slack_server: SlackTestServer, redis_server: Any, tmp_path: Path
) -> None:
    slack_server.spread_events = True
    env = {
        "REDIS_URL": redis_server.url,
        "SLACK_BOT_TOKEN": slack_server.bot_token,
        "SLACK_APP_TOKEN": slack_server.app_token,
        "SLACK_API_URL": slack_server.api_url,
    }
    path = config(tmp_path)
    daemons = [Daemon(path, env), Daemon(path, env)]
    try:
        await slack_server.wait_connected(total=2, within=30)
        async with asyncio.timeout(30):
            while slack_server.live_connections < 2:
                await asyncio.sleep(0.05)
        for n in range(MESSAGES):
            for channel in CONVERSATIONS:
                await slack_server.send_event(message(channel, f"hi {n}", channel_type="im"))
        total = MESSAGES * len(CONVERSATIONS)
        await slack_server.wait_for_call("chat.postMessage", count=total, within=60)
        codes = [await asyncio.to_thread(d.stop, signal.SIGTERM) for d in daemons]
    finally:
        for daemon in daemons:
            if daemon.process.returncode is None:
                daemon.stop(signal.SIGKILL)
    output = "".join(d.output for d in daemons)
    counts: dict[str, list[int]] = {channel: [] for channel in CONVERSATIONS}
    for call in slack_server.calls_to("chat.postMessage"):
        counts[call.args["channel"]].append(int(call.args["text"]))
    # Each conversation counted every one of its messages once: its answers are 1..15.
    assert {c: sorted(n) for c, n in counts.items()} == {
        c: list(range(1, MESSAGES + 1)) for c in CONVERSATIONS
    }, output[-3000:]
    # The envelopes went over both daemons' connections, so some events were forwarded.
    assert len({ack.connection for ack in slack_server.acks}) == 2
    assert codes == [0, 0], output[-3000:]
