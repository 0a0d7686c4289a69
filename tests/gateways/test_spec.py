"""docs/specs/mqtt.md and layer/types.py describe the same protocol, key for key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from layer import types

SPEC = (Path(__file__).resolve().parents[2] / "docs" / "specs" / "mqtt.md").read_text()


def section(heading: str) -> str:
    return re.split(r"\n#{2,3} ", SPEC.split(heading, 1)[1], maxsplit=1)[0]


def table_keys(heading: str) -> set[str]:
    """The keys in the first column of the table under ``heading``."""
    keys = re.findall(r"^\| `([a-z_]+)(?:\[[^]]*\])?` \|", section(heading), re.MULTILINE)
    return set(keys)


def optional_keys(heading: str) -> set[str]:
    """The keys whose description starts with *Optional*."""
    return set(re.findall(r"^\| `([a-z_]+)` \|[^|]*\| \*Optional", section(heading), re.MULTILINE))


@pytest.mark.parametrize(
    ("heading", "typed_dict"),
    [
        ("## Scope", types.MqttScope),
        ("### Connect - `receive` event", types.MqttConnectEvent),
        ("### Message - `receive` event", types.MqttMessageEvent),
        ("### Disconnect - `receive` event", types.MqttDisconnectEvent),
        ("### Publish - `send` event", types.MqttPublishEvent),
        ("### Subscribe - `send` event", types.MqttSubscribeEvent),
        ("### Unsubscribe - `send` event", types.MqttUnsubscribeEvent),
        ("### Close - `send` event", types.MqttCloseEvent),
        ("## Properties", types.MqttProperties),
    ],
)
def test_the_spec_and_the_typed_dicts_have_the_same_keys(heading: str, typed_dict: Any) -> None:
    assert table_keys(heading) == set(typed_dict.__annotations__)
    if typed_dict.__total__:
        assert optional_keys(heading) == set(typed_dict.__optional_keys__)


# -- docs/specs/channel.md (workers) ---------------------------------------------------------

CHANNEL_SPEC = (Path(__file__).resolve().parents[2] / "docs" / "specs" / "channel.md").read_text()


def channel_table_keys(heading: str) -> tuple[set[str], set[str]]:
    """The keys of the table under ``heading`` in channel.md, and those marked *Optional*."""
    text = re.split(r"\n#{2,3} ", CHANNEL_SPEC.split(heading, 1)[1], maxsplit=1)[0]
    keys = re.findall(r"^\| `([a-z_]+)(?:\[[^]]*\])?` \|", text, re.MULTILINE)
    optional = re.findall(r"^\| `([a-z_]+)` \|[^|]*\| \*Optional", text, re.MULTILINE)
    return set(keys), set(optional)


@pytest.mark.parametrize(
    ("heading", "typed_dict"),
    [
        ("## Scope", types.ChannelScope),
        ("### Message - `receive` event", types.ChannelMessageEvent),
        ("### Disconnect - `receive` event", types.ChannelDisconnectEvent),
        ("### Close - `send` event", types.ChannelCloseEvent),
    ],
)
def test_the_channel_spec_and_its_typed_dicts_have_the_same_keys(
    heading: str, typed_dict: Any
) -> None:
    keys, optional = channel_table_keys(heading)
    assert keys == set(typed_dict.__annotations__)
    assert optional == set(typed_dict.__optional_keys__)
