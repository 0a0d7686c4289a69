"""The Matrix gateway's ``idempotency_key`` (``docs/specs/chat.md``): ``matrix:`` and the id
of the event each chat event is made of (a message, a reaction, the redaction that took a
reaction away), against a real Synapse."""

from __future__ import annotations

from typing import Any

import pytest
import test_matrix as matrix
from nio import RoomRedactResponse, RoomSendResponse  # type: ignore[import-untyped]

# The Matrix tests' fixtures (tests/gateways/test_matrix.py): one Synapse for this module.
synapse = matrix.synapse
bot = matrix.bot
human = matrix.human
make_matrix_gateway = matrix.make_matrix_gateway

pytestmark = pytest.mark.timeout(60)


def of_type(app: Any, kind: str) -> list[dict[str, Any]]:
    return [e for log in app.logs for e in log.events if e["type"] == kind]


async def test_messages_reactions_and_redactions_carry_their_event_ids(
    bot: Any, human: Any, recording_app: Any, make_matrix_gateway: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await run_gateway(make_matrix_gateway(app, bot))
    alice = await human("alice")
    room = await matrix.room_with_bot(alice, bot)
    sent = await alice.send(room, "hello")
    relation = {"rel_type": "m.annotation", "event_id": sent, "key": "👍"}
    liked = await alice.nio.room_send(room, "m.reaction", {"m.relates_to": relation})
    assert isinstance(liked, RoomSendResponse)
    await app.wait_for(lambda: bool(of_type(app, "chat.reaction")), within=15)
    redacted = await alice.nio.room_redact(room, liked.event_id)
    assert isinstance(redacted, RoomRedactResponse)
    await app.wait_for(lambda: len(of_type(app, "chat.reaction")) == 2, within=15)

    [message] = of_type(app, "chat.message")
    assert message["idempotency_key"] == f"matrix:{sent}"
    assert sent.startswith("$")
    added, removed = of_type(app, "chat.reaction")
    assert (added["added"], added["idempotency_key"]) == (True, f"matrix:{liked.event_id}")
    assert (removed["added"], removed["idempotency_key"]) == (
        False,
        f"matrix:{redacted.event_id}",
    )
