"""The shipped chatbot (examples/chatbot with rocketchat.yaml), run by the daemon as a user
runs it, answers users on RocketChatTestServer in rooms, threads and DMs, and after a restart
answers what was posted while it was down, once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from daemon_helpers import ROOT, Daemon

from gateways.testing.rocketchat import RocketChatTestServer

CONFIG = ROOT / "examples" / "chatbot" / "rocketchat.yaml"


@pytest.fixture
async def rocketchat() -> AsyncIterator[RocketChatTestServer]:
    async with RocketChatTestServer.started() as server:
        yield server


def start(server: RocketChatTestServer, folder: Path) -> Daemon:
    return Daemon(
        CONFIG,
        {
            "ROCKETCHAT_URL": server.url,
            "ROCKETCHAT_USER_ID": server.user_id,
            "ROCKETCHAT_TOKEN": server.token,
            "ROCKETCHAT_STATE": str(folder / "rocketchat.json"),
            "CHATBOT_STATE": str(folder / "chatbot.sqlite3"),
        },
    )


async def stop(daemon: Daemon, server: RocketChatTestServer) -> None:
    code = await asyncio.to_thread(daemon.stop, signal.SIGTERM)
    assert code == 0, daemon.output
    assert server.token not in daemon.output
    assert "Traceback" not in daemon.output


async def test_the_chatbot_answers_on_rocketchat_in_rooms_threads_and_dms(
    rocketchat: RocketChatTestServer, tmp_path: Path
) -> None:
    alice = rocketchat.add_user("alice")
    general = rocketchat.add_room("general", members=[alice["_id"]])
    dm = rocketchat.dm(alice)
    daemon = start(rocketchat, tmp_path)
    try:
        await rocketchat.wait_connected(within=20)
        await rocketchat.post(general, alice, "just chatting")  # not addressed: no answer
        await rocketchat.post(general, alice, "@bot hello there")
        first = await rocketchat.wait_for_sent(within=15)
        assert (first["rid"], first["msg"]) == (general, "hello there")
        await rocketchat.post(general, alice, "@bot count")
        assert (await rocketchat.wait_for_sent(2))["msg"] == "1 so far"
        top = await rocketchat.post(general, alice, "a topic")
        await rocketchat.post(general, alice, "@bot in a thread", tmid=top["_id"])
        in_thread = await rocketchat.wait_for_sent(3)
        assert (in_thread["msg"], in_thread.get("tmid")) == ("in a thread", top["_id"])
        await rocketchat.post(dm, alice, "count")  # a DM is addressed to the bot
        answer = await rocketchat.wait_for_sent(4)
        assert (answer["rid"], answer["msg"]) == (dm, "0 so far")
    finally:
        await stop(daemon, rocketchat)
    assert len(rocketchat.sent) == 4

    # Down: what is posted meanwhile is answered after the restart, and nothing twice.
    await rocketchat.post(general, alice, "@bot while you were away")
    daemon = start(rocketchat, tmp_path)
    try:
        missed = await rocketchat.wait_for_sent(5, within=20)
        assert (missed["rid"], missed["msg"]) == (general, "while you were away")
        await rocketchat.post(general, alice, "@bot count")
        assert (await rocketchat.wait_for_sent(6))["msg"] == "2 so far"
    finally:
        await stop(daemon, rocketchat)
    assert len(rocketchat.sent) == 6
