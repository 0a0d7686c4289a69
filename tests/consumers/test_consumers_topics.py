"""compile_topic: patterns to topic filters, matchers and captures; refused patterns."""

from __future__ import annotations

import pytest

from consumers import ConsumerError, compile_topic


@pytest.mark.parametrize(
    ("pattern", "topic_filter", "captures"),
    [
        ("devices/{device_id}/telemetry", "devices/+/telemetry", ("device_id",)),
        ("devices/{device_id}/{rest:#}", "devices/+/#", ("device_id", "rest")),
        ("sport/tennis/+", "sport/tennis/+", ()),
        ("sport/#", "sport/#", ()),
        ("#", "#", ()),
        ("+", "+", ()),
        ("{all:#}", "#", ("all",)),
        ("+/+", "+/+", ()),
        ("/finance", "/finance", ()),
        ("a//b", "a//b", ()),
        ("$SYS/broker/{metric}", "$SYS/broker/+", ("metric",)),
        ("{site}/{room}/temp", "+/+/temp", ("site", "room")),
        ("plain.level-with spaces/ünï", "plain.level-with spaces/ünï", ()),
    ],
)
def test_valid_patterns_compile(pattern: str, topic_filter: str, captures: tuple[str, ...]) -> None:
    compiled = compile_topic(pattern)
    assert compiled.pattern == pattern
    assert compiled.topic_filter == topic_filter
    assert compiled.captures == captures


def test_docstring_example() -> None:
    compiled = compile_topic("devices/{device_id}/{rest:#}")
    assert compiled.regex.pattern == "devices/(?P<device_id>[^/]*)(?:/(?P<rest>.*))?"
    assert compiled.match("devices/d1/telemetry/temp") == {
        "device_id": "d1",
        "rest": "telemetry/temp",
    }


@pytest.mark.parametrize(
    ("pattern", "topic", "kwargs"),
    [
        ("devices/{device_id}/telemetry", "devices/d1/telemetry", {"device_id": "d1"}),
        ("devices/{device_id}/telemetry", "devices/d1/status", None),
        ("devices/{device_id}/telemetry", "devices/d1/x/telemetry", None),
        ("devices/{device_id}/telemetry", "devices//telemetry", {"device_id": ""}),
        ("devices/{id}/{rest:#}", "devices/d1/a/b/c", {"id": "d1", "rest": "a/b/c"}),
        # "a/#" also matches "a" (MQTT 5.0 section 4.7.1.2): the rest is then empty.
        ("devices/{id}/{rest:#}", "devices/d1", {"id": "d1", "rest": ""}),
        ("devices/{id}/{rest:#}", "devices", None),
        ("sport/#", "sport", {}),
        ("sport/#", "sport/tennis/player1", {}),
        ("sport/#", "sports", None),
        ("sport/tennis/+", "sport/tennis/player1", {}),
        ("sport/tennis/+", "sport/tennis/player1/ranking", None),
        ("sport/+", "sport", None),
        ("sport/+", "sport/", {}),
        ("+/+", "/finance", {}),
        ("/+", "/finance", {}),
        ("+", "/finance", None),
        ("#", "anything/at/all", {}),
        ("a.b/[x]", "a.b/[x]", {}),
        ("a.b/[x]", "aXb/[x]", None),
        ("a/{x}", "a/line\nbreak", {"x": "line\nbreak"}),
        # Topics beginning with $ are not matched by a leading wildcard (section 4.7.2).
        ("#", "$SYS/broker/uptime", None),
        ("+/monitor/Clients", "$SYS/monitor/Clients", None),
        ("{first}/status", "$SYS/status", None),
        ("{all:#}", "$SYS", None),
        ("$SYS/#", "$SYS/broker/uptime", {}),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", {}),
        ("a/+", "a/$b", {}),
    ],
)
def test_matching(pattern: str, topic: str, kwargs: dict[str, str] | None) -> None:
    assert compile_topic(pattern).match(topic) == kwargs


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("", ["''", "empty"]),
        ("a/#/b", ["'a/#/b'", "'#'", "last level"]),
        ("a/{rest:#}/b", ["'a/{rest:#}/b'", "'{rest:#}'", "last level"]),
        ("sport+", ["'sport+'", "mixes a wildcard"]),
        ("sport/ten#", ["'sport/ten#'", "'ten#'", "mixes a wildcard"]),
        ("a/+x/b", ["'+x'", "mixes a wildcard"]),
        ("a/{id}x", ["'{id}x'", "braces"]),
        ("a/x{id}", ["'x{id}'", "braces"]),
        ("a/{id", ["'{id'", "braces"]),
        ("a/id}", ["'id}'", "braces"]),
        ("a/{}", ["'{}'", "bad capture name"]),
        ("a/{1st}", ["'{1st}'", "bad capture name '1st'"]),
        ("a/{dev-id}", ["'{dev-id}'", "bad capture name"]),
        ("a/{id:+}", ["'{id:+}'", "unknown capture kind"]),
        ("a/{id:int}", ["'{id:int}'", "unknown capture kind"]),
        ("{id}/b/{id}", ["'{id}/b/{id}'", "repeats the capture name 'id'"]),
        ("{id}/{id:#}", ["repeats the capture name 'id'"]),
        ("a/b\x00c", ["NUL"]),
        ("a/" + "x" * 65535, ["65535 bytes"]),
    ],
)
def test_invalid_patterns_are_refused(pattern: str, words: list[str]) -> None:
    with pytest.raises(ConsumerError) as caught:
        compile_topic(pattern)
    assert isinstance(caught.value, ValueError)
    for word in words:
        assert word in str(caught.value)


def test_non_str_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a str"):
        compile_topic(b"a/b")  # type: ignore[arg-type]
