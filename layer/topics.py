"""MQTT topic rules, in one place: topic names, topic filters, shared subscriptions, matching.

Every part of the project that judges a topic uses this module: the YAML options of the
MQTT gateway (``gateways.mqtt.options``), the events an application sends it
(``mqtt.publish``, ``mqtt.subscribe``), ``MqttConsumer.publish`` and ``subscribe``, and the
patterns of ``TopicRouter`` (``consumers.topics``). It lives in ``layer``, the lowest package
that both gateways and consumers may import.

The rules, MQTT 5.0 (the same hold in MQTT 3.1.1 sections 1.5.3 and 4.7):

- a topic name or filter is a UTF-8 string (section 1.5.4): at least one character
  (section 4.7.3), no U+0000, no UTF-16 surrogate, at most 65,535 bytes encoded;
- a topic name has no wildcard, ``+`` or ``#`` (sections 3.3.2.1 and 4.7.1);
- in a topic filter, ``#`` stands alone in the last level (section 4.7.1.2) and ``+`` alone
  in its level (section 4.7.1.3);
- a shared subscription is ``$share/<ShareName>/<filter>`` (section 4.8.2): a ShareName of
  at least one character without ``/``, ``+`` or ``#``, then a valid, non-empty filter;
- matching (section 4.7): ``+`` matches one level, ``#`` any number including none
  (``a/#`` matches ``a``), and a filter that starts with a wildcard matches no topic name
  that starts with ``$`` (section 4.7.2). A shared subscription matches as its filter.

Examples (the full table is ``tests/layer/test_topics.py``)::

    >>> validate_topic_filter("$share/workers/devices/+/telemetry")
    '$share/workers/devices/+/telemetry'
    >>> validate_topic_filter("$share//devices/#")  # InvalidTopic: needs a group name
    >>> filter_matches("devices/+/telemetry", "devices/d1/telemetry")
    True
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "MAX_TOPIC_BYTES",
    "SHARED_PREFIX",
    "InvalidTopic",
    "SharedSubscription",
    "filter_matches",
    "split_shared",
    "validate_topic_filter",
    "validate_topic_name",
    "validate_utf8_string",
]

#: The longest UTF-8 string MQTT can carry, in bytes (MQTT 5.0 section 1.5.4).
MAX_TOPIC_BYTES = 65_535

#: The first level of a shared subscription (MQTT 5.0 section 4.8.2).
SHARED_PREFIX = "$share"


class InvalidTopic(ValueError):
    """A topic name or topic filter that breaks a rule of MQTT 5.0; the message quotes it and
    names the section. A ``ValueError``, so pydantic reports it as a validation error."""


class SharedSubscription(NamedTuple):
    """A topic filter split by ``split_shared``.

    Attributes:
        group: The ShareName of ``$share/<group>/<filter>``; ``None`` for a plain filter.
        topic_filter: The filter that topics are matched against.
    """

    group: str | None
    topic_filter: str


def validate_utf8_string(kind: str, value: str) -> None:
    """Check the UTF-8 string rules of MQTT 5.0 section 1.5.4 (and non-empty, section 4.7.3).

    Args:
        kind: What ``value`` is, for the message, e.g. ``"topic name"``.
        value: The string.

    Raises:
        InvalidTopic: Not a ``str``, empty, a U+0000 or a surrogate, or longer than 65,535
            bytes in UTF-8.
    """
    if not isinstance(value, str):
        raise InvalidTopic(f"{kind} must be a str, got {value!r}")
    if not value:
        raise InvalidTopic(f"{kind} {value!r} must not be empty (MQTT 5.0 section 4.7.3)")
    if "\x00" in value:
        raise InvalidTopic(f"{kind} {value!r} contains U+0000 NUL (MQTT 5.0 section 1.5.4)")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidTopic(
            f"{kind} {value[:50]!r} contains a UTF-16 surrogate (MQTT 5.0 section 1.5.4)"
        ) from None
    if size > MAX_TOPIC_BYTES:
        raise InvalidTopic(
            f"{kind} {value[:50]!r}... is longer than {MAX_TOPIC_BYTES} bytes "
            "(MQTT 5.0 section 1.5.4)"
        )


def validate_topic_name(topic: str) -> str:
    """Check a topic name, the topic of a PUBLISH (MQTT 5.0 sections 3.3.2.1 and 4.7).

    Args:
        topic: E.g. ``"devices/d1/state"``.

    Returns:
        ``topic`` unchanged.

    Raises:
        InvalidTopic: It breaks the string rules or holds a wildcard (``+`` or ``#``).
    """
    validate_utf8_string("topic name", topic)
    if "+" in topic or "#" in topic:
        raise InvalidTopic(
            f"topic name {topic!r} contains a wildcard (+ or #); publish to a topic name, "
            "not a filter (MQTT 5.0 section 3.3.2.1)"
        )
    return topic


def split_shared(topic_filter: str) -> SharedSubscription:
    """Split ``$share/<group>/<filter>`` into its group and filter (MQTT 5.0 section 4.8.2).

    A filter that is not a shared subscription comes back as ``(None, topic_filter)``. Only
    the form is read here; ``validate_topic_filter`` checks the parts.
    """
    if topic_filter.startswith(SHARED_PREFIX + "/"):
        _, group, inner = [*topic_filter.split("/", 2), "", ""][:3]
        return SharedSubscription(group, inner)
    return SharedSubscription(None, topic_filter)


def validate_topic_filter(topic_filter: str) -> str:
    """Check a topic filter, one to SUBSCRIBE to (MQTT 5.0 sections 4.7.1 and 4.8.2).

    Args:
        topic_filter: E.g. ``"devices/+/state"``, ``"#"`` or ``"$share/g/devices/#"``.

    Returns:
        ``topic_filter`` unchanged.

    Raises:
        InvalidTopic: It breaks the string rules; ``#`` is not alone in the last level;
            ``+`` is not alone in its level; or a shared subscription lacks its group or
            filter (``$share/g``, ``$share//a``, ``$share/g/``) or has a wildcard in its group.
    """
    validate_utf8_string("topic filter", topic_filter)
    group, inner = split_shared(topic_filter)
    if topic_filter == SHARED_PREFIX or group is not None:
        if not group or not inner:
            raise InvalidTopic(
                f"shared subscription {topic_filter!r} needs a group name and a filter: "
                "$share/<group>/<filter> (MQTT 5.0 section 4.8.2)"
            )
        if "+" in group or "#" in group:
            raise InvalidTopic(
                f"shared subscription {topic_filter!r}: the group name has a wildcard "
                "(MQTT 5.0 section 4.8.2)"
            )
    levels = inner.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            raise InvalidTopic(
                f"topic filter {topic_filter!r}: '#' must be alone in the last level "
                "(MQTT 5.0 section 4.7.1.2)"
            )
        if "+" in level and level != "+":
            raise InvalidTopic(
                f"topic filter {topic_filter!r}: '+' must be alone in its level "
                "(MQTT 5.0 section 4.7.1.3)"
            )
    return topic_filter


def filter_matches(topic_filter: str, topic: str) -> bool:
    """Whether the topic name ``topic`` matches ``topic_filter`` (MQTT 5.0 section 4.7).

    Both are taken as valid (see ``validate_topic_filter`` and ``validate_topic_name``). A
    shared subscription matches as its filter; a filter starting with a wildcard does not
    match a topic starting with ``$`` (section 4.7.2); ``a/#`` matches ``a`` (4.7.1.2).
    """
    topic_filter = split_shared(topic_filter).topic_filter
    if topic_filter == topic:
        return True
    wanted = topic_filter.split("/")
    if topic.startswith("$") and wanted[0] in ("+", "#"):
        return False
    levels = topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
    return len(wanted) == len(levels)
