"""docs/specs/mqtt.md and gateways/types.py describe the same protocol, key for key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateways import types

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
