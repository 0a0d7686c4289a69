"""docs/specs/chat.md and layer/types.py describe the same chat protocol, key for key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest

from gateways.chat import SEND_EVENT_TYPES
from layer import types

SPEC = (Path(__file__).resolve().parents[2] / "docs" / "specs" / "chat.md").read_text()


def section(heading: str) -> str:
    assert f"\n{heading}\n" in SPEC, f"no heading {heading!r} in docs/specs/chat.md"
    return re.split(r"\n#{2,3} ", SPEC.split(f"\n{heading}\n", 1)[1], maxsplit=1)[0]


def table_keys(heading: str) -> set[str]:
    """The keys in the first column of the table under ``heading``."""
    keys = re.findall(r"^\| `([a-z_]+)(?:\[[^]]*\])?` \|", section(heading), re.MULTILINE)
    return set(keys)


def optional_keys(heading: str) -> set[str]:
    """The keys whose description starts with *Optional*."""
    return set(re.findall(r"^\| `([a-z_]+)` \|[^|]*\| \*Optional", section(heading), re.MULTILINE))


TABLES = [
    ("## Scope", types.ChatScope),
    ("### Conversation", types.ChatConversation),
    ("### Bot", types.ChatBot),
    ("### User", types.ChatUser),
    ("### Attachment", types.ChatAttachment),
    ("### Connect - `receive` event", types.ChatConnectEvent),
    ("### Message - `receive` event", types.ChatMessageEvent),
    ("### Command - `receive` event", types.ChatCommandEvent),
    ("### Reaction - `receive` event", types.ChatReactionEvent),
    ("### Action - `receive` event", types.ChatActionEvent),
    ("### Disconnect - `receive` event", types.ChatDisconnectEvent),
    ("### Send - `send` event", types.ChatSendMessageEvent),
    ("### React - `send` event", types.ChatReactEvent),
    ("### Typing - `send` event", types.ChatTypingEvent),
    ("### Close - `send` event", types.ChatCloseEvent),
]


@pytest.mark.parametrize(("heading", "typed_dict"), TABLES)
def test_the_spec_and_the_typed_dicts_have_the_same_keys(heading: str, typed_dict: Any) -> None:
    assert table_keys(heading) == set(typed_dict.__annotations__)
    assert optional_keys(heading) == set(typed_dict.__optional_keys__)


def test_every_event_type_of_the_protocol_has_a_section_with_its_type() -> None:
    for event in (*get_args(types.ChatReceiveEvent), *get_args(types.ChatSendEvent)):
        (kind,) = get_args(event.__annotations__["type"])
        assert any(f'`"{kind}"`' in section(h) for h, t in TABLES if t is event), kind


def test_the_gateway_accepts_exactly_the_send_events_of_the_spec() -> None:
    kinds = {get_args(event.__annotations__["type"])[0] for event in get_args(types.ChatSendEvent)}
    assert set(SEND_EVENT_TYPES) == kinds


def test_the_spec_lists_every_conversation_kind_and_key_mode() -> None:
    for kind in get_args(types.ConversationKind):
        assert f'`"{kind}"`' in section("### Conversation")
    for mode in get_args(types.ConversationKey):
        assert f'| `"{mode}"`' in section("## Conversations")
