"""The shipped chatbot (examples/chatbot with mattermost.yaml), run by the daemon as a user
runs it, answers users on MattermostTestServer in channels, threads and DMs; restarted, it
catches up what was posted while it was down and repeats nothing."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from daemon_helpers import ROOT, Daemon

from gateways.testing.mattermost import MattermostTestServer

CONFIG = ROOT / "examples" / "chatbot" / "mattermost.yaml"


@pytest.fixture
async def mattermost() -> AsyncIterator[MattermostTestServer]:
    async with MattermostTestServer.started() as server:
        yield server


async def test_the_chatbot_answers_on_mattermost_and_catches_up_after_a_restart(
    mattermost: MattermostTestServer, tmp_path: Path
) -> None:
    team = mattermost.add_team("test team")
    alice = mattermost.add_user("alice")
    town = mattermost.add_channel(team, "town-square", members=[alice["id"]])
    dm = mattermost.dm(alice["id"])
    env = {
        "MATTERMOST_URL": mattermost.url,
        "MATTERMOST_TOKEN": mattermost.token,
        "MATTERMOST_STATE": str(tmp_path / "mattermost-state.json"),
        "CHATBOT_STATE": str(tmp_path / "chatbot.sqlite3"),
    }
    daemon = Daemon(CONFIG, env)
    try:
        await mattermost.wait_ready(within=20)
        await mattermost.post(town, alice, "just chatting")  # not addressed: no answer
        root = await mattermost.post(town, alice, "@gatewaybot hello there")
        first = await mattermost.wait_for_sent(within=15)
        assert (first.channel_id, first.message, first.root_id) == (town, "hello there", "")
        await mattermost.post(town, alice, "@gatewaybot in a thread", root_id=root["id"])
        in_thread = await mattermost.wait_for_sent(2, within=10)
        assert (in_thread.message, in_thread.root_id) == ("in a thread", root["id"])
        await mattermost.post(dm, alice, "count")  # a DM is addressed to the bot
        answer = await mattermost.wait_for_sent(3, within=10)
        assert (answer.channel_id, answer.message) == (dm, "0 so far")
    finally:
        code = await asyncio.to_thread(daemon.stop, signal.SIGTERM)
    assert code == 0, daemon.output
    output = daemon.output
    await mattermost.post(dm, alice, "while the bot was down")  # fetched after the restart
    daemon = Daemon(CONFIG, env)
    try:
        answer = await mattermost.wait_for_sent(4, within=20)
        assert (answer.channel_id, answer.message) == (dm, "while the bot was down")
        await mattermost.post(dm, alice, "count")
        assert (await mattermost.wait_for_sent(5, within=10)).message == "1 so far"
        assert len(mattermost.sent) == 5  # nothing answered twice
    finally:
        code = await asyncio.to_thread(daemon.stop, signal.SIGTERM)
    assert code == 0, daemon.output
    for text in (output, daemon.output):
        assert mattermost.token not in text
        assert "Traceback" not in text
