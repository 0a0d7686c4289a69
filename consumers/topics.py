"""Topic patterns: MQTT topic filters with named captures, compiled once.

A pattern is an MQTT topic filter (MQTT 5.0 section 4.7) whose levels may also be captures:

- ``{name}`` captures one level, like ``+`` (MQTT 5.0 section 4.7.1.3);
- ``{name:#}`` as the last level captures the rest of the topic, like ``#`` (section 4.7.1.2).
  Since ``a/#`` also matches ``a`` itself, the capture may be empty;
- bare ``+`` and ``#`` match without capturing; any other level is literal text.

Each pattern compiles, in the manner of Starlette's ``compile_path``, to the topic filter to
subscribe to at the broker, a regular expression matching topic names, and the capture names.

The rules of topic names and filters themselves are in ``layer.topics``, their one home;
``validate_topic_filter`` and ``validate_topic_name`` are re-exported here (they raise
``layer.topics.InvalidTopic``, a ``ValueError``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from consumers.base import ConsumerError
from layer.topics import (
    InvalidTopic,
    validate_topic_filter,
    validate_topic_name,
    validate_utf8_string,
)

__all__ = ["CompiledTopic", "compile_topic", "validate_topic_filter", "validate_topic_name"]

_CAPTURE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WILDCARDS = frozenset("+#")


@dataclass(frozen=True, slots=True)
class CompiledTopic:
    """A compiled topic pattern.

    Attributes:
        pattern: The pattern as written, e.g. ``"devices/{device_id}/#"``.
        topic_filter: The MQTT topic filter to subscribe to, e.g. ``"devices/+/#"``.
        regex: Matches a whole topic name; one named group per capture.
        captures: The capture names, in the order of the levels.
        multi_level: Whether the last level is ``#`` or ``{name:#}`` (matches any rest,
            including none).
    """

    pattern: str
    topic_filter: str
    regex: re.Pattern[str]
    captures: tuple[str, ...]
    multi_level: bool

    def match(self, topic: str) -> dict[str, str] | None:
        """Match a topic name.

        Args:
            topic: A topic name (no wildcards), e.g. ``"devices/d1/telemetry"``.

        Returns:
            The captured levels by name (an empty dict when the pattern captures nothing), or
            ``None`` when the topic does not match. A ``{name:#}`` capture that matched no
            level (``a/{rest:#}`` against ``a``) is ``""``.
        """
        found = self.regex.fullmatch(topic)
        if found is None:
            return None
        return {name: value or "" for name, value in found.groupdict().items()}

    def first_levels(self, count: int) -> CompiledTopic | None:
        """The pattern of the first ``count`` levels of the topics this one matches: to route
        a scope opened by key, whose key is a topic's first levels (an MQTT ``scopes`` rule).

        Returns:
            This pattern when it has ``count`` levels, or fewer and ends in ``#``; its first
            ``count`` levels when it has more (``devices/{device_id}/telemetry``, 2:
            ``devices/{device_id}``); ``None`` when it has fewer and no ``#``.
        """
        levels = self.pattern.split("/")
        if len(levels) > count:
            return compile_topic("/".join(levels[:count]))
        return self if len(levels) == count or self.multi_level else None


def _check_string(kind: str, value: str) -> None:
    try:
        validate_utf8_string(kind, value)
    except InvalidTopic as exc:
        raise ConsumerError(str(exc)) from None


def compile_topic(pattern: str) -> CompiledTopic:
    """Compile a topic pattern to a broker topic filter, a matcher and capture names.

    Example::

        >>> compiled = compile_topic("devices/{device_id}/{rest:#}")
        >>> compiled.topic_filter
        'devices/+/#'
        >>> compiled.regex.pattern
        'devices/(?P<device_id>[^/]*)(?:/(?P<rest>.*))?'
        >>> compiled.captures
        ('device_id', 'rest')
        >>> compiled.match("devices/d1/telemetry/temp")
        {'device_id': 'd1', 'rest': 'telemetry/temp'}

    A pattern whose first level is a wildcard or a capture does not match topic names that
    begin with ``$`` (MQTT 5.0 section 4.7.2): ``"+/status"`` does not match ``"$SYS/status"``.

    Args:
        pattern: Levels separated by ``/``; each is literal text, ``+``, ``#`` (last level
            only), ``{name}`` or ``{name:#}`` (last level only). A name is a Python identifier.

    Returns:
        The compiled pattern.

    Raises:
        ConsumerError: (a ``ValueError``) the pattern cannot be an MQTT topic filter: empty,
            a NUL character, longer than 65535 bytes, ``#`` or ``{name:#}`` not last,
            ``+``, ``#`` or braces mixed with other text in a level, a bad or duplicate
            capture name. The message quotes the pattern and the level.
    """
    _check_string("topic pattern", pattern)
    levels = pattern.split("/")
    last = len(levels) - 1
    filter_levels: list[str] = []
    parts: list[str] = []
    captures: list[str] = []
    multi_level = False

    def fail(level: str, why: str) -> ConsumerError:
        return ConsumerError(f"topic pattern {pattern!r}: level {level!r} {why}")

    for index, level in enumerate(levels):
        name: str | None = None
        kind = level
        if level.startswith("{") and level.endswith("}") and len(level) >= 2:
            name, colon, kind = level[1:-1].partition(":")
            if not colon:
                kind = "+"
            elif kind != "#":
                raise fail(level, "has an unknown capture kind; write {name} or {name:#}")
            if not _CAPTURE_NAME.fullmatch(name):
                raise fail(level, f"has a bad capture name {name!r}; use a Python identifier")
            if name in captures:
                raise fail(level, f"repeats the capture name {name!r}")
            captures.append(name)
        elif _WILDCARDS.intersection(level) and level not in _WILDCARDS:
            raise fail(level, "mixes a wildcard with other text (MQTT 5.0 section 4.7.1)")
        elif "{" in level or "}" in level:
            raise fail(level, "has braces that are not a whole-level capture {name}")

        if kind == "#":
            if index != last:
                raise fail(level, "must be the last level (MQTT 5.0 section 4.7.1.2)")
            multi_level = True
            filter_levels.append("#")
            group = f"(?P<{name}>.*)" if name else ".*"
            if index == 0:
                parts.append(group)
            else:
                parts.append(f"(?:/{group})?")
            continue
        if kind == "+":
            filter_levels.append("+")
            regex = f"(?P<{name}>[^/]*)" if name else "[^/]*"
        else:
            filter_levels.append(level)
            regex = re.escape(level)
        parts.append(regex if index == 0 else "/" + regex)

    source = "".join(parts)
    if filter_levels[0] in _WILDCARDS:
        source = r"(?!\$)" + source
    return CompiledTopic(
        pattern=pattern,
        topic_filter="/".join(filter_levels),
        regex=re.compile(source, re.DOTALL),
        captures=tuple(captures),
        multi_level=multi_level,
    )


def compose(outer: CompiledTopic, inner: CompiledTopic) -> CompiledTopic:
    """The pattern of ``inner`` nested under ``outer``, whose last level is ``#`` or ``{n:#}``.

    ``devices/{device_id}/{rest:#}`` and ``{metric}/value`` compose to
    ``devices/{device_id}/{metric}/value`` (filter ``devices/+/+/value``); the outer rest
    capture is replaced by the inner levels.

    Raises:
        ConsumerError: ``outer`` does not end in a multi-level wildcard, or the composed
            pattern repeats a capture name.
    """
    if not outer.multi_level:
        raise ConsumerError(
            f"topic pattern {outer.pattern!r} must end in '#' or '{{name:#}}' to nest "
            f"the pattern {inner.pattern!r} under it"
        )
    prefix = outer.pattern.split("/")[:-1]
    return compile_topic("/".join([*prefix, inner.pattern]))
