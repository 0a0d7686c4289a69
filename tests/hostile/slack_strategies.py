"""Hypothesis strategies for hostile Slack payloads: genuine ones with parts replaced by
arbitrary JSON, and arbitrary JSON, text and bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from gateways.testing.slack_payloads import (
    block_actions,
    event_callback,
    message,
    reaction,
    slash_command,
)

#: Any JSON value, small.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)

#: Chat text an attacker would write: control characters, bidi overrides, NUL, lone
#: surrogates, forged mentions.
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None, categories=["Cc", "Cf", "Cs", "Zl", "Zp"]), max_size=20),
    st.sampled_from(
        [
            "<@U0BOT00001|fake>",
            "<@UBOT|gatewaybot> hi",
            "\u202e@gatewaybot\u202c count",
            "gatewaybot\x00: count",
            "\ud800 lone",
            "x" * 5000,
            "a@gatewaybot.b",
            "<!channel> <!here|here>",
        ]
    ),
)

#: Key paths of genuine payloads an example may replace.
EVENT_PATHS = [
    ("event",),
    ("event", "type"),
    ("event", "text"),
    ("event", "user"),
    ("event", "channel"),
    ("event", "channel_type"),
    ("event", "ts"),
    ("event", "thread_ts"),
    ("event", "subtype"),
    ("event", "files"),
    ("event", "bot_id"),
    ("event", "item"),
    ("event", "item", "channel"),
    ("event", "reaction"),
    ("event_id",),
    ("type",),
    ("team_id",),
    ("authorizations",),
    ("is_ext_shared_channel",),
    ("enterprise",),
    ("team",),
]
ACTION_PATHS = [
    ("actions",),
    ("actions", 0),
    ("actions", 0, "action_id"),
    ("actions", 0, "value"),
    ("actions", 0, "selected_option"),
    ("container",),
    ("container", "message_ts"),
    ("channel",),
    ("channel", "name"),
    ("user",),
    ("user", "username"),
    ("message",),
    ("message", "thread_ts"),
    ("team",),
    ("response_urls",),
    ("type",),
]


def _replace(payload: Any, path: tuple[Any, ...], value: Any) -> None:
    node = payload
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int)):
        try:
            node[path[-1]] = value
        except IndexError:
            return


@st.composite
def mutated(
    draw: st.DrawFn, base: Callable[[], dict[str, Any]], paths: list[tuple[Any, ...]]
) -> Any:
    """A fresh ``base()`` (new ids: not a redelivery) with one to three of ``paths`` replaced
    by arbitrary JSON or hostile text."""
    payload = base()
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        _replace(payload, path, draw(json_values | hostile_text))
    return payload


def genuine_event(text: str = "hello") -> dict[str, Any]:
    return event_callback(message("C0CHAN0001", text, channel_type="channel"))


def genuine_reaction() -> dict[str, Any]:
    return event_callback(reaction("C0CHAN0001", "1700000000.000100", "heart"))


def genuine_action() -> dict[str, Any]:
    return block_actions("refresh", value="v", channel_id="C0CHAN0001")


#: Events API bodies (as JSON values) and interaction payloads.
event_bodies = (
    mutated(genuine_event, EVENT_PATHS) | mutated(genuine_reaction, EVENT_PATHS) | json_values
)
action_payloads = mutated(genuine_action, ACTION_PATHS) | json_values
#: Slash command forms: the genuine fields, some replaced by hostile text.
command_forms = st.builds(
    lambda fields, extra: {**fields, **extra},
    st.just(slash_command("/temp", "kitchen", channel_id="C0CHAN0001")),
    st.dictionaries(
        st.sampled_from(["command", "text", "channel_id", "channel_name", "user_id", "user_name"]),
        hostile_text,
        max_size=3,
    ),
)
