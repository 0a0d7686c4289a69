"""Two daemons on one Slack app in Socket Mode (issue 22): SlackTestServer spreads the app's
events over both daemons' connections, as Slack spreads them over an app's Socket Mode
connections, and the cluster keeps each conversation on one daemon, so that its durable
count is whole: every message of every conversation counted once, none lost."""

from __future__ import annotations

import asyncio
import os
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


def config(tmp_path: Path, cluster: str = "cluster: {lease: 2}\n", slack: str = "") -> Path:
    path = tmp_path / "slack.yaml"
    path.write_text(
        "application: counting_chat:application\n"
        "shutdown_timeout: 5\n"
        "logging:\n"
        "  level: INFO\n"
        "layer: {type: redis, options: {hosts: ['${REDIS_URL}']}}\n"
        "state: {backend: redis, hosts: ['${REDIS_URL}']}\n"
        f"{cluster}"
        "gateways:\n"
        "  slack:\n"
        "    type: slack\n"
        "    mode: socket\n"
        "    bot_token: ${SLACK_BOT_TOKEN}\n"
        "    app_token: ${SLACK_APP_TOKEN}\n"
        "    base_url: ${SLACK_API_URL}\n"
        f"{slack}"
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


async def test_an_envelope_is_acknowledged_only_once_the_owner_handled_it(
    redis_server: Any, tmp_path: Path
) -> None:
    """Daemon B receives envelopes of the conversations daemon A owns while A is paused
    (SIGSTOP, within its lease): B forwards them and acknowledges none before A, resumed,
    handled it. Then B is killed (SIGKILL) holding unacknowledged envelopes: Slack sends them
    again to A, and every conversation still counts each of its messages once."""
    # Envelopes are sent again every second, ten times: long enough for the resumed daemon.
    async with SlackTestServer.started(ack_timeout=1.0, max_retries=10) as slack_server:
        env = {
            "REDIS_URL": redis_server.url,
            "SLACK_BOT_TOKEN": slack_server.bot_token,
            "SLACK_APP_TOKEN": slack_server.app_token,
            "SLACK_API_URL": slack_server.api_url,
        }
        # A lease well past each pause, and the longest wait Slack allows before the answer.
        path = config(tmp_path, "cluster: {lease: 20}\n", "    ack_wait: 2.9\n")
        a = Daemon(path, env)
        daemons = [a]
        try:
            await slack_server.wait_connected(total=1, within=30)  # connection 1: A
            b = Daemon(path, env)
            daemons.append(b)
            await slack_server.wait_connected(total=2, within=30)  # connection 2: B
            async with asyncio.timeout(30):
                while slack_server.live_connections < 2:
                    await asyncio.sleep(0.05)
            # Round 1, spread over both: each conversation is claimed by the daemon its
            # first message reached, which acknowledges it on its own connection.
            slack_server.spread_events = True
            first = {
                c: await slack_server.send_event(message(c, "1", channel_type="im"))
                for c in CONVERSATIONS
            }
            await slack_server.wait_for_call(
                "chat.postMessage", count=len(CONVERSATIONS), within=30
            )
            owner = {
                c: (await slack_server.wait_ack(e, within=10)).connection for c, e in first.items()
            }
            owned_by_a = [c for c in CONVERSATIONS if owner[c] == 1]
            owned_by_b = [c for c in CONVERSATIONS if owner[c] == 2]
            assert owned_by_a, owner
            assert owned_by_b, owner

            # Round 2: A paused, every envelope to B (the newest connection).
            slack_server.spread_events = False
            os.kill(a.process.pid, signal.SIGSTOP)
            second = {
                c: await slack_server.send_event(message(c, "2", channel_type="im"))
                for c in CONVERSATIONS
            }
            for c in owned_by_b:  # B handles its own conversations, and acknowledges them
                await slack_server.wait_ack(second[c], within=10)
            # ... but not those it forwarded to A, which has not handled them.
            assert [c for c in owned_by_a if slack_server.acks_for(second[c])] == []
            answered = {
                c
                for c in owned_by_a
                for call in slack_server.calls_to("chat.postMessage")
                if call.args["channel"] == c and call.args["text"] == "2"
            }
            assert answered == set()
            os.kill(a.process.pid, signal.SIGCONT)
            for c in owned_by_a:  # acknowledged by B, once A reported them handled
                ack = await slack_server.wait_ack(second[c], within=20)
                assert ack.connection == 2

            # Round 3: A paused again; B takes the envelopes, forwards A's, and is killed
            # before A handled them: they are left to Slack, which sends them to A.
            os.kill(a.process.pid, signal.SIGSTOP)
            third = {
                c: await slack_server.send_event(message(c, "3", channel_type="im"))
                for c in CONVERSATIONS
            }
            for c in owned_by_b:
                await slack_server.wait_ack(third[c], within=10)
            assert [c for c in owned_by_a if slack_server.acks_for(third[c])] == []
            b.stop(signal.SIGKILL)
            os.kill(a.process.pid, signal.SIGCONT)
            for c in owned_by_a:
                ack = await slack_server.wait_ack(third[c], within=30)
                assert ack.connection == 1  # A, from Slack's repeat
            total = 3 * len(CONVERSATIONS)
            await slack_server.wait_for_call("chat.postMessage", count=total, within=30)
            await asyncio.sleep(1.5)  # a repeat applied twice would answer once more
            code = await asyncio.to_thread(a.stop, signal.SIGTERM)
        finally:
            for daemon in daemons:
                if daemon.process.returncode is None:
                    os.kill(daemon.process.pid, signal.SIGCONT)
                    daemon.stop(signal.SIGKILL)
        output = "".join(d.output for d in daemons)
        counts: dict[str, list[int]] = {channel: [] for channel in CONVERSATIONS}
        for call in slack_server.calls_to("chat.postMessage"):
            counts[call.args["channel"]].append(int(call.args["text"]))
        # Every conversation counted each of its three messages once: answers 1, 2, 3.
        assert {c: sorted(n) for c, n in counts.items()} == {c: [1, 2, 3] for c in CONVERSATIONS}, (
            output[-3000:]
        )
        assert code == 0, output[-3000:]
