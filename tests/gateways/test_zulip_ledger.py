"""The Zulip gateway's ledger: marks move only over handled ids, an event of a replaced
queue confirms nothing in the new one, and the state file round-trips (or is refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateways.base import GatewayError
from gateways.zulip.ledger import Ledger, Marks, TrackedEvent


def test_the_mark_moves_over_handled_ids_only() -> None:
    marks = Marks()
    marks.reset(-1)
    assert marks.take(0)
    assert marks.take(1)
    assert not marks.take(1)  # a repeat
    marks.done(1)
    assert marks.mark == -1  # 0 is still in hand
    assert marks.seen(1)
    marks.done(0)
    assert marks.mark == 1
    assert marks.handled == set()


def test_an_event_of_a_replaced_queue_confirms_nothing(tmp_path: Path) -> None:
    ledger = Ledger("zulip", None)
    ledger.new_queue("old", -1, 100)
    assert ledger.events.take(0)
    old = TrackedEvent(0, None, {"type": "chat.reaction"}, "old")
    ledger.new_queue("new", -1, 100)  # the old queue was lost
    assert ledger.events.take(0)
    ledger.done(old)
    assert ledger.last_event_id == -1  # the new queue's event 0 is still in hand
    ledger.done(TrackedEvent(0, None, {}, "new"))
    assert ledger.last_event_id == 0


def test_the_state_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    ledger = Ledger("zulip", path)
    ledger.new_queue("q1", -1, 1000)
    for event_id, message_id in ((0, 1001), (1, 1002)):
        ledger.events.take(event_id)
        ledger.messages.take(message_id)
    ledger.done(TrackedEvent(1, 1002, {}, "q1"))
    again = Ledger("zulip", path)
    again.load()
    assert again.queue_id == "q1"
    assert again.last_event_id == -1
    assert again.events.seen(1)
    assert not again.events.seen(0)
    assert again.messages.seen(1002)
    assert not again.messages.seen(1001)
    assert again.messages.mark == 1000


def test_a_broken_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(GatewayError, match="move it away"):
        Ledger("zulip", path).load()
