"""The chatbot example (examples/chatbot/matrix.yaml) in the daemon, against a real Synapse,
with an ordinary matrix-nio client playing the human."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import ROOT, Daemon

from gateways.testing.synapse import MatrixAccount, MatrixHuman, Synapse, SynapseNotInstalled

pytestmark = pytest.mark.timeout(90)

CONFIG = ROOT / "examples" / "chatbot" / "matrix.yaml"


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    try:
        server = Synapse(tmp_path_factory.mktemp("synapse"))
    except SynapseNotInstalled as exc:
        pytest.skip(str(exc))
    server.start()
    yield server
    server.stop()


def start_daemon(server: Synapse, bot: MatrixAccount, state: Path) -> Daemon:
    return Daemon(
        CONFIG,
        {
            "MATRIX_HOMESERVER": server.url,
            "MATRIX_USER_ID": bot.user_id,
            "MATRIX_PASSWORD": bot.password,
            "XDG_STATE_HOME": str(state),  # the default store_path lives under it
            "LOG_LEVEL": "INFO",
        },
    )


async def test_the_chatbot_answers_in_a_room_and_a_direct_room_and_a_restart_replays_nothing(
    synapse: Synapse, tmp_path: Path
) -> None:
    bot = await asyncio.to_thread(synapse.register, f"bot-{secrets.token_hex(3)}")
    account = await asyncio.to_thread(synapse.register, f"alice-{secrets.token_hex(3)}")
    daemon = start_daemon(synapse, bot, tmp_path / "state")
    try:
        async with MatrixHuman(synapse, account) as alice:
            room = await alice.create_room(invite=[bot.user_id], name="general")
            await alice.wait_member(room, bot.user_id, within=30)  # the daemon is up
            await alice.send(room, "help")
            listing = await alice.next_message(room, bot.user_id)
            assert "count" in listing["content"]["body"]
            await alice.send(room, "count")
            assert (await alice.next_message(room, bot.user_id))["content"]["body"] == "0 so far"

            direct = await alice.create_room(invite=[bot.user_id], direct=True)
            await alice.wait_member(direct, bot.user_id)
            await alice.send(direct, "hello bot")
            answer = await alice.next_message(direct, bot.user_id)
            assert answer["content"]["body"] == "hello bot"
            await alice.send(direct, "count")
            assert (await alice.next_message(direct, bot.user_id))["content"]["body"] == "1 so far"

            assert await asyncio.to_thread(daemon.stop, signal.SIGTERM) == 0
            daemon = start_daemon(synapse, bot, tmp_path / "state")
            await alice.send(room, "count")  # a fresh consumer: its count starts again
            again = await alice.next_message(room, bot.user_id, within=30)
            assert again["content"]["body"] == "0 so far"
            await alice.send(direct, "still there?")
            assert (await alice.next_message(direct, bot.user_id))["content"]["body"] == (
                "still there?"
            )
            bodies = [m["content"]["body"] for m in alice.messages(room, bot.user_id)]
            assert bodies == [listing["content"]["body"], "0 so far", "0 so far"]
            bodies = [m["content"]["body"] for m in alice.messages(direct, bot.user_id)]
            assert bodies == ["hello bot", "1 so far", "still there?"]
    finally:
        code = await asyncio.to_thread(daemon.stop, signal.SIGTERM)
        assert code == 0, daemon.output
    assert "Traceback" not in daemon.output


def test_a_wrong_password_is_one_clear_error_at_start(synapse: Synapse, tmp_path: Path) -> None:
    bot = synapse.register(f"bot-{secrets.token_hex(3)}")
    wrong = MatrixAccount(bot.user_id, "not-the-password", bot.access_token, bot.device_id)
    daemon = start_daemon(synapse, wrong, tmp_path / "state")
    code = daemon.stop(sig=None, timeout=30)
    assert code == 1, daemon.output
    assert "M_FORBIDDEN" in daemon.output
    assert "Traceback" not in daemon.output
    assert "not-the-password" not in daemon.output
