"""The shipped chatbot (examples/chatbot/chatbot.py with zulip.yaml) in the daemon, against
ZulipTestServer: it answers in direct messages and when mentioned in a stream topic, and a
daemon killed (SIGKILL) or stopped (SIGTERM) mid-stream and started again loses no message
and answers none twice, but for the one in hand in a conversation at the kill (at least
once)."""

from __future__ import annotations

import asyncio
import collections
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from daemon_helpers import ROOT, Daemon

from gateways.testing.zulip import ZulipTestServer

CONFIG = ROOT / "examples" / "chatbot" / "zulip.yaml"
GENERAL = 101

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def zulip() -> AsyncIterator[ZulipTestServer]:
    async with ZulipTestServer.started(heartbeat=2.0) as server:
        server.add_stream(GENERAL, "general")
        yield server


def env(zulip: ZulipTestServer, tmp_path: Path) -> dict[str, str]:
    return {
        "ZULIP_SITE": zulip.site,
        "ZULIP_EMAIL": zulip.bot_email,
        "ZULIP_API_KEY": zulip.api_key,
        "ZULIP_STATE": str(tmp_path / "zulip-state.json"),
        "LOG_LEVEL": "INFO",
    }


async def stop(daemon: Daemon, sig: signal.Signals) -> int:
    return await asyncio.to_thread(daemon.stop, sig)


async def test_the_chatbot_answers_on_zulip(zulip: ZulipTestServer, tmp_path: Path) -> None:
    alice = zulip.add_user(5001, "Alice Liddell")["user_id"]
    daemon = Daemon(CONFIG, env(zulip, tmp_path))
    try:
        await zulip.wait_polling(within=20)
        zulip.post_direct_message(alice, "hello")
        assert (await zulip.wait_for_sent(within=20)).text == "hello"
        zulip.post_direct_message(alice, "count")
        assert (await zulip.wait_for_sent(2)).text == "1 so far"
        zulip.post_stream_message(GENERAL, "chat", alice, "chatter, not for the bot")
        zulip.post_stream_message(GENERAL, "chat", alice, "Gateway Bot: hi")
        answer = await zulip.wait_for_sent(3)
        assert (answer.text, answer.stream_id, answer.topic) == ("hi", GENERAL, "chat")
        zulip.post_stream_message(GENERAL, "chat", alice, "@**Gateway Bot** count")
        # A Zulip mention, @**Full Name**, addresses the bot and is stripped: the command
        # runs (one message echoed in this topic so far).
        assert (await zulip.wait_for_sent(4)).text == "1 so far"
        assert len(zulip.sent) == 4
    finally:
        code = await stop(daemon, signal.SIGTERM)
    assert code == 0, daemon.output
    assert zulip.api_key not in daemon.output
    assert "serving Zulip at" in daemon.output


async def test_a_daemon_killed_and_stopped_mid_stream_loses_nothing(
    zulip: ZulipTestServer, tmp_path: Path
) -> None:
    users = [zulip.add_user(6000 + n, f"User{n}")["user_id"] for n in range(4)]
    daemons = [Daemon(CONFIG, env(zulip, tmp_path))]
    total = 60
    try:
        await zulip.wait_polling(within=20)
        zulip.post_direct_message(users[0], "warm-up")
        await zulip.wait_for_sent(within=20)
        for number in range(total):
            zulip.post_direct_message(users[number % len(users)], f"message {number}")
            if number == 20:
                await stop(daemons[-1], signal.SIGKILL)
                daemons.append(Daemon(CONFIG, env(zulip, tmp_path)))
            elif number == 40:
                await zulip.wait_for_call("GET users/me", count=len(daemons), within=20)
                assert await stop(daemons[-1], signal.SIGTERM) == 0, daemons[-1].output
                daemons.append(Daemon(CONFIG, env(zulip, tmp_path)))
            await asyncio.sleep(0.03)

        def answered() -> set[str]:
            return {s.text for s in zulip.sent}

        await zulip.wait_until(
            lambda: {f"message {n}" for n in range(total)} <= answered(),
            "an answer to every message",
            within=40,
        )
    finally:
        for daemon in daemons:
            await stop(daemon, signal.SIGTERM)
    counts = collections.Counter(s.text for s in zulip.sent)
    doubled = {text: count for text, count in counts.items() if count > 1}
    # At least once: only a message whose answer was sent just before the SIGKILL, before its
    # handling was written down, may be answered twice: one per conversation at most.
    assert len(doubled) <= len(users), doubled
    assert all(count == 2 for count in doubled.values()), doubled
    for person in users:  # each conversation in order, every message answered
        texts = [s.text for s in zulip.sent_to(to=(person,)) if s.text.startswith("message")]
        numbers = [int(t.split()[1]) for t in texts]
        assert sorted(set(numbers)) == [
            n for n in range(total) if n % len(users) == users.index(person)
        ]
