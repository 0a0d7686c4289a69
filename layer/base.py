"""The channel layer interface, its errors, and the name and message rules.

Everything here follows the Channels channel layer specification
(``docs/channel_layer_spec.rst`` in django/channels) and Channels 4.x
``channels/layers.py`` ``BaseChannelLayer``, so that Channels' own layers and ours are
interchangeable: the same name rules, ``TypeError`` for a bad name, ``ChannelFull`` on a
full channel, the ``groups`` and ``flush`` extensions.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from prometheus_client import Counter

__all__ = [
    "DROPPED_MESSAGES",
    "MAX_NAME_LENGTH",
    "BaseChannelLayer",
    "ChannelFull",
    "ChannelLayer",
    "InvalidMessage",
    "InvalidName",
    "LayerError",
    "LayerMessage",
    "LayerStats",
    "non_local_name",
    "require_valid_channel_name",
    "require_valid_group_name",
    "require_valid_message",
]

LayerMessage = dict[str, Any]
"""A channel layer message: a dict with a str ``"type"`` key (Channels layer spec, Messages)."""

MAX_NAME_LENGTH = 100
"""Channel and group names must be shorter than this many characters (as in Channels)."""

# Channels 4.x BaseChannelLayer's rules, matched against the whole name (Channels uses ``$``,
# which also accepts one trailing newline; the spec allows no such character).
_CHANNEL_NAME = re.compile(r"[a-zA-Z\d\-_.]+(![\d\w\-_.]*)?")
_GROUP_NAME = re.compile(r"[a-zA-Z\d\-_.]+")
_CHANNEL_RULE = (
    "channel names contain only ASCII letters, digits, hyphens, underscores and periods, "
    "optionally followed by one '!' and a local part of word characters, hyphens and periods "
    "(Channels layer spec)"
)
_GROUP_RULE = (
    "group names contain only ASCII letters, digits, hyphens, underscores and periods "
    "(Channels layer spec)"
)

DROPPED_MESSAGES = Counter(
    "asgi_gateway_layer_dropped_total",
    "Channel layer messages dropped without delivery: reason 'full' when group_send met a "
    "member channel at capacity, 'expired' when a message sat unread past the layer's expiry.",
    ["layer", "reason"],
)


class LayerError(Exception):
    """Base error of the channel layer package."""


class ChannelFull(LayerError):
    """``send()`` met a channel at capacity (Channels layer spec, Capacity)."""


class InvalidName(LayerError, TypeError):
    """A channel or group name breaks the spec's rules.

    Also a ``TypeError``, which is what Channels raises, so code written for Channels'
    layers catches it unchanged.
    """


class InvalidMessage(LayerError, TypeError):
    """A message is not a dict with a str ``"type"`` key."""


def _check_name(name: object, kind: str, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(name, str):
        raise InvalidName(f"{kind} name must be a str, got {type(name).__name__} {name!r}")
    if len(name) >= MAX_NAME_LENGTH:
        raise InvalidName(
            f"{kind} name {name!r} is {len(name)} characters long; "
            f"names must be shorter than {MAX_NAME_LENGTH} characters"
        )
    if pattern.fullmatch(name) is None:
        raise InvalidName(f"{kind} name {name!r} is invalid: {rule}")
    return name


def require_valid_channel_name(name: object) -> str:
    """Check a channel name against the Channels layer spec.

    Args:
        name: The channel name, e.g. ``"chat.alerts"`` or ``"specific.abc!def"``.

    Returns:
        The name, unchanged.

    Raises:
        InvalidName: (a ``TypeError``) when ``name`` is not a str, is 100 characters or
            longer, or holds characters other than ASCII letters, digits, ``-``, ``_``, ``.``
            before an optional ``!`` and local part.
    """
    return _check_name(name, "Channel", _CHANNEL_NAME, _CHANNEL_RULE)


def require_valid_group_name(name: object) -> str:
    """Check a group name against the Channels layer spec.

    Args:
        name: The group name, e.g. ``"devices.kitchen"``.

    Returns:
        The name, unchanged.

    Raises:
        InvalidName: (a ``TypeError``) when ``name`` is not a str, is 100 characters or
            longer, or holds characters other than ASCII letters, digits, ``-``, ``_``, ``.``.
    """
    return _check_name(name, "Group", _GROUP_NAME, _GROUP_RULE)


def require_valid_message(message: object) -> LayerMessage:
    """Check that a message is a dict with a str ``"type"`` key.

    The spec requires a dict; the ``"type"`` key is what every consumer dispatches on.

    Args:
        message: The message to check.

    Returns:
        The message, unchanged.

    Raises:
        InvalidMessage: (a ``TypeError``) when it is not a dict or lacks a str ``"type"``.
    """
    if not isinstance(message, dict):
        raise InvalidMessage(
            f"message must be a dict, got {type(message).__name__} {message!r:.200}"
        )
    kind = message.get("type")
    if not isinstance(kind, str):
        raise InvalidMessage(f'message must have a str "type" key, got {message!r:.200}')
    return message


def non_local_name(name: str) -> str:
    """Return the non-local part of a channel name.

    For a process-specific channel name (one with ``!``) this is the part up to and
    including the ``!``, as in Channels' ``BaseChannelLayer.non_local_name``; for any other
    name it is the whole name.

    Args:
        name: A channel name, e.g. ``"specific.abc!def"``.

    Returns:
        ``"specific.abc!"`` for that example.
    """
    bang = name.find("!")
    return name if bang < 0 else name[: bang + 1]


def _check_seconds(value: object, option: str) -> float:
    # A numeric str is accepted: the configuration's ${VAR} values are strings.
    number: object = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    if isinstance(number, bool) or not isinstance(number, int | float) or not number > 0:
        raise LayerError(f"{option} must be a positive number of seconds, got {value!r}")
    if number == float("inf"):
        raise LayerError(f"{option} must be a finite number of seconds, got {value!r}")
    return float(number)


def _check_capacity(value: object, option: str) -> int:
    number: object = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise LayerError(f"{option} must be an int of at least 1, got {value!r}")
    return number


@dataclass
class LayerStats:
    """Counts of messages a layer dropped, readable by the user.

    Attributes:
        dropped_full: ``group_send`` deliveries skipped because the member was at capacity.
        dropped_expired: Messages that sat unread past the expiry and were discarded.
    """

    dropped_full: int = 0
    dropped_expired: int = 0


@runtime_checkable
class ChannelLayer(Protocol):
    """What a channel layer provides (Channels layer spec, Specification Details).

    Both our layers and Channels' own (``channels.layers.InMemoryChannelLayer``,
    ``channels_redis.core.RedisChannelLayer``) satisfy it.
    """

    extensions: list[str]

    async def send(self, channel: str, message: LayerMessage) -> None: ...

    def receive(self, channel: str) -> Awaitable[LayerMessage]: ...

    async def new_channel(self, prefix: str = ...) -> str: ...

    async def group_add(self, group: str, channel: str) -> None: ...

    async def group_discard(self, group: str, channel: str) -> None: ...

    async def group_send(self, group: str, message: LayerMessage) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...


class BaseChannelLayer:
    """Common settings of our channel layers: expiry, group expiry and capacity.

    Args:
        expiry: Seconds a message may sit unread in a channel before it is dropped.
        group_expiry: Seconds a group membership lasts after its latest ``group_add``.
        capacity: Messages a channel holds before ``send()`` raises ``ChannelFull``.
        channel_capacity: Capacity per channel name pattern, first match wins; a str key
            is a glob (``"mqtt.*"``), an ``re.Pattern`` key is a regex matched at the start
            of the name, as in channels_redis.

    Raises:
        LayerError: An expiry that is not a positive number, or a capacity that is not an
            int of at least 1.
    """

    extensions: ClassVar[list[str]] = ["groups", "flush"]
    MAX_NAME_LENGTH: ClassVar[int] = MAX_NAME_LENGTH

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | re.Pattern[str], int] | None = None,
    ) -> None:
        self.expiry = _check_seconds(expiry, "expiry")
        self.group_expiry = _check_seconds(group_expiry, "group_expiry")
        self.capacity = _check_capacity(capacity, "capacity")
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.stats = LayerStats()

    @staticmethod
    def compile_capacities(
        channel_capacity: Mapping[str | re.Pattern[str], int],
    ) -> list[tuple[re.Pattern[str], int]]:
        """Compile a ``channel_capacity`` mapping into ``(regex, capacity)`` pairs.

        Args:
            channel_capacity: Glob (str) or regex (``re.Pattern``) keys, capacity values.

        Returns:
            The pairs in the mapping's order.

        Raises:
            LayerError: A key that is neither, or a capacity that is not an int >= 1.
        """
        if not isinstance(channel_capacity, Mapping):
            raise LayerError(f"channel_capacity must be a mapping, got {channel_capacity!r}")
        result: list[tuple[re.Pattern[str], int]] = []
        for pattern, value in channel_capacity.items():
            option = f"channel_capacity[{pattern!r}]"
            if isinstance(pattern, re.Pattern):
                compiled = pattern
            elif isinstance(pattern, str):
                compiled = re.compile(fnmatch.translate(pattern))
            else:
                raise LayerError(f"{option}: a pattern must be a glob str or an re.Pattern")
            result.append((compiled, _check_capacity(value, option)))
        return result

    def get_capacity(self, channel: str) -> int:
        """Return the capacity of a channel: the first matching pattern's, or the default.

        Args:
            channel: The full channel name.

        Returns:
            The number of messages the channel holds before ``ChannelFull``.
        """
        for pattern, capacity in self.channel_capacity:
            if pattern.match(channel):
                return capacity
        return self.capacity

    def require_valid_channel_name(self, name: object) -> str:
        """Same as the module's ``require_valid_channel_name``, as Channels' method."""
        return require_valid_channel_name(name)

    def require_valid_group_name(self, name: object) -> str:
        """Same as the module's ``require_valid_group_name``, as Channels' method."""
        return require_valid_group_name(name)

    def non_local_name(self, name: str) -> str:
        """Same as the module's ``non_local_name``, as Channels' method."""
        return non_local_name(name)
