"""Name rules, message rules, capacities and errors of ``layer.base``."""

from __future__ import annotations

import re
from typing import Any

import channels.layers
import pytest

from layer import (
    MAX_NAME_LENGTH,
    BaseChannelLayer,
    ChannelFull,
    ChannelLayer,
    InMemoryChannelLayer,
    InvalidMessage,
    InvalidName,
    LayerError,
    non_local_name,
    require_valid_channel_name,
    require_valid_group_name,
    require_valid_message,
)


@pytest.mark.parametrize(
    "name", ["a", "chat.room-1_B", "specific.abc!", "specific.abc!def", "x" * 99]
)
def test_valid_channel_names_are_returned(name: str) -> None:
    assert require_valid_channel_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "a b", "a!b!c", "!x", "caf\u00e9", "line\n", "x" * MAX_NAME_LENGTH]
)
def test_invalid_channel_names_raise_a_type_error_quoting_them(name: str) -> None:
    with pytest.raises(InvalidName) as raised:
        require_valid_channel_name(name)
    assert isinstance(raised.value, TypeError)
    assert isinstance(raised.value, LayerError)
    assert repr(name)[:40] in str(raised.value)


def test_a_channel_name_error_states_the_rule() -> None:
    with pytest.raises(InvalidName, match=r"'a b' is invalid: channel names contain only ASCII"):
        require_valid_channel_name("a b")
    with pytest.raises(InvalidName, match="shorter than 100 characters"):
        require_valid_channel_name("x" * 100)


@pytest.mark.parametrize("name", [None, 1, b"bytes", ["a"]])
def test_a_name_that_is_not_a_str_raises_type_error(name: Any) -> None:
    with pytest.raises(TypeError, match="must be a str"):
        require_valid_channel_name(name)
    with pytest.raises(TypeError, match="must be a str"):
        require_valid_group_name(name)


@pytest.mark.parametrize("name", ["a!b", "a!", "", "g" * 100, "a.b c"])
def test_invalid_group_names(name: str) -> None:
    with pytest.raises(InvalidName, match="Group name"):
        require_valid_group_name(name)


def test_valid_group_name() -> None:
    assert require_valid_group_name("devices.kitchen-1_x") == "devices.kitchen-1_x"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("specific.abc!def", "specific.abc!"), ("specific.abc!", "specific.abc!"), ("plain", "plain")],
)
def test_non_local_name(name: str, expected: str) -> None:
    assert non_local_name(name) == expected
    assert InMemoryChannelLayer().non_local_name(name) == expected


@pytest.mark.parametrize("message", [{"type": "a"}, {"type": "a", "x": [1]}])
def test_valid_messages(message: dict[str, Any]) -> None:
    assert require_valid_message(message) is message


@pytest.mark.parametrize("message", [[], "s", {"x": 1}, {"type": None}])
def test_invalid_messages_are_quoted(message: Any) -> None:
    with pytest.raises(InvalidMessage, match=re.escape(repr(message))):
        require_valid_message(message)


def test_get_capacity_uses_the_first_matching_pattern() -> None:
    layer = BaseChannelLayer(
        capacity=10,
        channel_capacity={"mqtt.*": 1, re.compile(r"mqtt\.urgent"): 2, "chat.?": 3},
    )
    assert layer.get_capacity("mqtt.urgent") == 1  # the glob comes first
    assert layer.get_capacity("chat.a") == 3
    assert layer.get_capacity("chat.ab") == 10  # a glob matches the whole name
    assert layer.get_capacity("other") == 10


def test_a_regex_pattern_matches_at_the_start_of_the_name() -> None:
    layer = BaseChannelLayer(capacity=10, channel_capacity={re.compile(r"worker"): 4})
    assert layer.get_capacity("worker.thumbnails") == 4
    assert layer.get_capacity("my.worker") == 10


def test_errors_form_one_family() -> None:
    assert issubclass(ChannelFull, LayerError)
    assert issubclass(InvalidName, LayerError)
    assert issubclass(InvalidMessage, LayerError)


def test_ours_and_channels_layers_satisfy_the_layer_protocol() -> None:
    assert isinstance(InMemoryChannelLayer(), ChannelLayer)
    assert isinstance(channels.layers.InMemoryChannelLayer(), ChannelLayer)
    assert InMemoryChannelLayer.extensions == ["groups", "flush"]
