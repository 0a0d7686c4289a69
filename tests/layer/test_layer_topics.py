"""The MQTT topic rules (layer.topics), table by table, and proof that every user applies them:
the YAML options of the MQTT gateway, the events an application sends the gateway, and the
consumers' publish/subscribe helpers."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from consumers import topics as consumer_topics
from gateways import GatewayError
from gateways.mqtt import MqttGatewayOptions
from gateways.mqtt.events import parse_filter, parse_publish
from layer.topics import (
    InvalidTopic,
    filter_matches,
    split_shared,
    validate_topic_filter,
    validate_topic_name,
)

#: Topic filters one may subscribe to (MQTT 5.0 sections 4.7.1 and 4.8.2).
VALID_FILTERS = [
    "a",
    "a/b",
    "+",
    "#",
    "a/+/c",
    "a/#",
    "+/+",
    "+/#",
    "/",
    "a//b",
    "/a",
    "$SYS/#",
    "a/{x}",  # braces are plain text in a filter
    "sport/tennis player1",  # spaces are allowed (section 4.7.3)
    "$share/g/a/#",
    "$share/g/#",
    "$share/workers/devices/+/telemetry",
    "$share/g/$SYS/x",
    "ünïcode/✓",
    "x" * 65_535,
]

#: Topic filters that break a rule, and words the error must contain.
INVALID_FILTERS = [
    ("", "must not be empty"),
    ("a/#/b", "'#' must be alone in the last level"),
    ("a/b#", "'#' must be alone in the last level"),
    ("#/", "'#' must be alone in the last level"),
    ("a+/b", "'+' must be alone in its level"),
    ("a/b+c", "'+' must be alone in its level"),
    ("++", "'+' must be alone in its level"),
    ("$share", "needs a group name and a filter"),
    ("$share/g", "needs a group name and a filter"),
    ("$share//a", "needs a group name and a filter"),
    ("$share//", "needs a group name and a filter"),
    ("$share/g/", "needs a group name and a filter"),
    ("$share/g+/a", "the group name has a wildcard"),
    ("$share/#/a", "the group name has a wildcard"),
    ("$share/g/a/#/b", "'#' must be alone"),
    ("$share/g/a+", "'+' must be alone"),
    ("a\x00b", "U+0000"),
    ("a/\ud800", "surrogate"),
    ("x" * 65_536, "65535 bytes"),
]

VALID_NAMES = ["a", "a/b", "/", "a//b", "$SYS/broker/load", "sport/tennis player1", "ü/✓"]

INVALID_NAMES = [
    ("", "must not be empty"),
    ("a/+", "wildcard"),
    ("#", "wildcard"),
    ("a/b#", "wildcard"),
    ("a\x00", "U+0000"),
    ("\udfff", "surrogate"),
    ("x" * 65_536, "65535 bytes"),
]


@pytest.mark.parametrize("topic_filter", VALID_FILTERS)
def test_valid_filters(topic_filter: str) -> None:
    assert validate_topic_filter(topic_filter) == topic_filter


@pytest.mark.parametrize(("topic_filter", "words"), INVALID_FILTERS)
def test_invalid_filters(topic_filter: str, words: str) -> None:
    with pytest.raises(InvalidTopic, match=re.escape(words)) as caught:
        validate_topic_filter(topic_filter)
    assert isinstance(caught.value, ValueError)
    assert "MQTT 5.0 section" in str(caught.value)


@pytest.mark.parametrize("topic", VALID_NAMES)
def test_valid_names(topic: str) -> None:
    assert validate_topic_name(topic) == topic


@pytest.mark.parametrize(("topic", "words"), INVALID_NAMES)
def test_invalid_names(topic: str, words: str) -> None:
    with pytest.raises(InvalidTopic, match=re.escape(words)):
        validate_topic_name(topic)


def test_a_non_str_is_refused() -> None:
    with pytest.raises(InvalidTopic, match="must be a str"):
        validate_topic_name(b"a/b")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("topic_filter", "parts"),
    [
        ("a/b", (None, "a/b")),
        ("$share/g/a/#", ("g", "a/#")),
        ("$share/g/a/b/c", ("g", "a/b/c")),
        ("$shared/g/a", (None, "$shared/g/a")),
        ("$SYS/#", (None, "$SYS/#")),
    ],
)
def test_split_shared(topic_filter: str, parts: tuple[str | None, str]) -> None:
    assert split_shared(topic_filter) == parts


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a", False),
        ("a/+/c", "a/b/c", True),
        ("a/#", "a", True),  # MQTT 5.0 section 4.7.1.2: the parent level too
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("+/+", "/a", True),
        ("+", "", True),
        ("#", "$SYS/x", False),  # section 4.7.2
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("$share/g/a/+", "a/b", True),
        ("$share/g/a/+", "$share/g/a/b", False),
        ("a/b/c", "a/b", False),
    ],
)
def test_filter_matches(topic_filter: str, topic: str, matches: bool) -> None:
    assert filter_matches(topic_filter, topic) is matches


# -- every user applies the same rules -----------------------------------------------------


@pytest.mark.parametrize("topic_filter", VALID_FILTERS)
def test_every_user_accepts_a_valid_filter(topic_filter: str) -> None:
    options = MqttGatewayOptions(subscriptions=[{"topic": topic_filter}])
    assert options.subscriptions[0].topic == topic_filter
    assert parse_filter({"type": "mqtt.subscribe", "topic": topic_filter}) == topic_filter
    assert consumer_topics.validate_topic_filter(topic_filter) == topic_filter


@pytest.mark.parametrize(("topic_filter", "words"), INVALID_FILTERS)
def test_every_user_refuses_an_invalid_filter(topic_filter: str, words: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(words)):
        MqttGatewayOptions(subscriptions=[{"topic": topic_filter}])
    with pytest.raises(GatewayError, match=re.escape(words)):
        parse_filter({"type": "mqtt.subscribe", "topic": topic_filter})
    with pytest.raises(ValueError, match=re.escape(words)):
        consumer_topics.validate_topic_filter(topic_filter)


@pytest.mark.parametrize(("topic", "words"), INVALID_NAMES)
def test_every_user_refuses_an_invalid_name(topic: str, words: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(words)):
        MqttGatewayOptions(will={"topic": topic})
    options = MqttGatewayOptions()
    with pytest.raises(GatewayError, match=re.escape(words)):
        parse_publish({"type": "mqtt.publish", "topic": topic, "payload": b""}, "mqtt", options)
    with pytest.raises(ValueError, match=re.escape(words)):
        consumer_topics.validate_topic_name(topic)
