"""The chatbot example (examples/chatbot/xmpp.yaml) in the daemon, against a real Prosody,
with an ordinary slixmpp client playing the human."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import ROOT, Daemon

from gateways.testing.prosody import Prosody, ProsodyNotInstalled, XmppHuman

pytestmark = pytest.mark.timeout(90)

CONFIG = ROOT / "examples" / "chatbot" / "xmpp.yaml"
ROOM = "general@conference.localhost"
BOT = "bot@localhost"


@pytest.fixture
def prosody(tmp_path: Path) -> Iterator[Prosody]:
    try:
        server = Prosody(tmp_path / "prosody")
    except ProsodyNotInstalled as exc:
        pytest.skip(f"Prosody can't run here: {exc}")
    server.register("bot", "bot-pw")
    server.register("alice", "alice-pw")
    server.start()
    yield server
    server.kill()


def start_daemon(server: Prosody) -> Daemon:
    return Daemon(
        CONFIG,
        {
            "XMPP_JID": BOT,
            "XMPP_PASSWORD": "bot-pw",
            "XMPP_HOST": server.host,
            "XMPP_PORT": str(server.port),
            "XMPP_CA_FILE": str(server.ca_file),
            "LOG_LEVEL": "INFO",
        },
    )


async def bot_in_room(alice: XmppHuman, present: bool = True, within: float = 30) -> None:
    try:
        async with asyncio.timeout(within):
            while ("bot" in alice.occupants(ROOM)) is not present:
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"the bot {'did not join' if present else 'did not leave'} {ROOM}")


async def test_the_chatbot_answers_in_a_room_and_directly_and_a_restart_replays_nothing(
    prosody: Prosody,
) -> None:
    daemon = start_daemon(prosody)
    try:
        async with XmppHuman.connected(prosody, "alice", "alice-pw") as alice:
            await alice.join(ROOM, "alice")
            await bot_in_room(alice)  # the daemon is up, its presence shown in the room
            alice.say(ROOM, "help", groupchat=True)
            listing = await alice.expect(r"count", sender=f"{ROOM}/bot")
            assert "help" in str(listing["body"])
            alice.say(ROOM, "count", groupchat=True)
            await alice.expect(r"^0 so far$", sender=f"{ROOM}/bot")

            alice.say(BOT, "hello bot")
            await alice.expect(r"^hello bot$", sender=BOT)
            alice.say(BOT, "count")
            await alice.expect(r"^1 so far$", sender=BOT)

            assert await asyncio.to_thread(daemon.stop, signal.SIGTERM) == 0
            await bot_in_room(alice, present=False)
            daemon = start_daemon(prosody)
            await bot_in_room(alice)
            await alice.nothing(1.5)  # the room's history is not answered again
            alice.say(ROOM, "count", groupchat=True)  # a fresh consumer: its count starts again
            await alice.expect(r"^0 so far$", sender=f"{ROOM}/bot")
            alice.say(BOT, "still there?")
            await alice.expect(r"^still there\?$", sender=BOT)
            from_bot = [str(m["body"]) for m in alice.received if str(m["from"]) == f"{ROOM}/bot"]
            assert from_bot == [str(listing["body"]), "0 so far", "0 so far"]
    finally:
        daemon.stop(signal.SIGTERM)
    assert "Traceback" not in daemon.output, daemon.output


def test_a_wrong_password_stops_the_daemon_with_one_clear_line(prosody: Prosody) -> None:
    daemon = Daemon(
        CONFIG,
        {
            "XMPP_PASSWORD": "wrong-password",
            "XMPP_HOST": prosody.host,
            "XMPP_PORT": str(prosody.port),
            "XMPP_CA_FILE": str(prosody.ca_file),
        },
    )
    assert daemon.stop(None, timeout=30) == 1
    assert "refused the login (not-authorized)" in daemon.output
    errors = [line for line in daemon.output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, errors  # slixmpp's "No appropriate login method." is left out
    assert "Traceback" not in daemon.output
    assert "wrong-password" not in daemon.output
