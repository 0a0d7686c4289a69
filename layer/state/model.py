"""What a state store holds: keys, stored states, timers and writes (plain frozen values).

Every store, ours and third-party ones, stores these and nothing else, so the conformance kit
(``gateways.testing.state``) can check them all the same way. ``next_state`` is the reference
meaning of a write: what ``load`` returns after it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

from layer.state.errors import InvalidStateKey, InvalidStateWrite

__all__ = [
    "DueTimer",
    "StateKey",
    "StateWrite",
    "StoredState",
    "Timer",
    "next_state",
]

# The gateway name rule of the configuration (config.models): the Channels name alphabet.
_GATEWAY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,99}")


def _text(value: object, what: str, *, empty: bool) -> str:
    if not isinstance(value, str):
        raise InvalidStateKey(f"{what} must be a str, got {type(value).__name__} {value!r:.100}")
    if not empty and not value:
        raise InvalidStateKey(f"{what} must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidStateKey(f"{what} {value!r:.100} is not valid Unicode: {exc}") from None
    return value


def _encode(part: str) -> str:
    # RFC 3986 percent-encoding of the UTF-8 bytes; only A-Z a-z 0-9 - . _ ~ stay as they are.
    return quote(part, safe="", encoding="utf-8", errors="strict")


@dataclass(frozen=True, slots=True)
class StateKey:
    """The key of one scope's state: (application route or consumer, gateway, scope key).

    Its stable string form, ``str(key)``, used as the key in every store, is the three parts
    percent-encoded (RFC 3986: UTF-8 bytes, every byte but ``A-Z a-z 0-9 - . _ ~`` as ``%XX``,
    upper-case hex) and joined by ``/``::

        >>> str(StateKey("thermostat.ThermostatConsumer", "devices", "kitchen"))
        'thermostat.ThermostatConsumer/devices/kitchen'
        >>> str(StateKey("app:Chat", "slack", "C024BE91L/1700000000.000100"))
        'app%3AChat/slack/C024BE91L%2F1700000000.000100'

    so it holds no ``/`` inside a part, no ``:``, no space and no control character, and
    ``StateKey.parse`` gives the key back.

    Attributes:
        route: The application route or consumer the state belongs to, e.g. the consumer's
            import path; not empty.
        gateway: The gateway's name from the configuration: 1 to 99 ASCII letters, digits,
            ``-``, ``_`` or ``.``.
        scope_key: The gateway's scope key (a topic, a device, a conversation); may be empty.

    Raises:
        InvalidStateKey: A part that is not a str, an empty route, a gateway name outside its
            alphabet, or text that is not valid Unicode (a lone surrogate).
    """

    route: str
    gateway: str
    scope_key: str

    def __post_init__(self) -> None:
        _text(self.route, "state key route", empty=False)
        _text(self.gateway, "state key gateway", empty=False)
        if not _GATEWAY_NAME.fullmatch(self.gateway):
            raise InvalidStateKey(
                f"state key gateway {self.gateway!r:.100} is not a gateway name: 1 to 99 ASCII "
                "letters, digits, '-', '_' or '.'"
            )
        _text(self.scope_key, "state key scope_key", empty=True)

    def __str__(self) -> str:
        return f"{_encode(self.route)}/{self.gateway}/{_encode(self.scope_key)}"

    @classmethod
    def parse(cls, text: str) -> StateKey:
        """The key whose string form is ``text``.

        Args:
            text: ``"route/gateway/scope_key"``, each part percent-encoded as ``str()`` does.

        Returns:
            The key; ``str(StateKey.parse(text)) == text``.

        Raises:
            InvalidStateKey: Not three parts, or not exactly the form ``str()`` gives (a
                character left unencoded, lower-case hex, a bad escape).
        """
        if not isinstance(text, str):
            raise InvalidStateKey(f"a state key's string form must be a str, got {text!r:.100}")
        parts = text.split("/")
        if len(parts) != 3:
            raise InvalidStateKey(
                f"{text!r:.200} is not a state key: expected 'route/gateway/scope_key'"
            )
        try:
            key = cls(*(unquote(part, encoding="utf-8", errors="strict") for part in parts))
        except UnicodeDecodeError as exc:
            raise InvalidStateKey(f"{text!r:.200} is not a state key: {exc}") from None
        if str(key) != text:
            raise InvalidStateKey(
                f"{text!r:.200} is not a state key in its stable form (expected {str(key)!r:.200})"
            )
        return key


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidStateWrite(f"{what} must be a finite number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Timer:
    """One named timer of a scope: an event to deliver at a time.

    Attributes:
        due: When it fires, in seconds since the epoch (``time.time()``); a float.
        event: The event to deliver, a JSON object (a dict with str keys and JSON values).
            The timer keeps its own copy, as JSON gives it back: tuples become lists.

    Raises:
        InvalidStateWrite: ``due`` is not a finite number, or ``event`` is not a dict that
            JSON can encode (no NaN or infinity).
    """

    due: float
    event: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "due", _seconds(self.due, "a timer's due time"))
        if not isinstance(self.event, Mapping):
            raise InvalidStateWrite(f"a timer's event must be a dict, got {self.event!r:.200}")
        object.__setattr__(self, "event", dict(self.event))
        object.__setattr__(self, "event", json.loads(self.event_json()))

    def event_json(self) -> str:
        """The event as compact JSON text.

        Raises:
            InvalidStateWrite: JSON cannot encode it.
        """
        try:
            return json.dumps(self.event, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidStateWrite(
                f"a timer's event must be JSON, got {self.event!r:.200}: {exc}"
            ) from exc

    def to_json(self) -> str:
        """``{"due": <float>, "event": {...}}`` as compact JSON text (how stores keep it)."""
        return '{"due":' + repr(self.due) + ',"event":' + self.event_json() + "}"

    @classmethod
    def from_json(cls, text: str | bytes) -> Timer:
        """The timer ``to_json`` wrote.

        Raises:
            InvalidStateWrite: The text is not such JSON.
        """
        try:
            value = json.loads(text)
            return cls(value["due"], value["event"])
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidStateWrite(f"not a stored timer: {text!r:.200}: {exc}") from None


def _timers(value: object) -> Mapping[str, Timer]:
    if not isinstance(value, Mapping):
        raise InvalidStateWrite(f"timers must be a mapping of name to Timer, got {value!r:.200}")
    for name, timer in value.items():
        if not isinstance(name, str) or not name:
            raise InvalidStateWrite(f"a timer's name must be a non-empty str, got {name!r:.100}")
        _text(name, "a timer's name", empty=False)
        if not isinstance(timer, Timer):
            raise InvalidStateWrite(f"timer {name!r} must be a Timer, got {timer!r:.200}")
    return MappingProxyType(dict(value))


def _applied(value: object) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidStateWrite(
            f"applied keys must be a list or tuple of str, got {value!r:.100} (write [key])"
        )
    keys = tuple(value)
    for key in keys:
        if not isinstance(key, str) or not key:
            raise InvalidStateWrite(f"an applied key must be a non-empty str, got {key!r:.100}")
        _text(key, "an applied key", empty=False)
    return keys


@dataclass(frozen=True, slots=True)
class StoredState:
    """A scope's state as ``load`` returns it.

    Attributes:
        data: The state, as the caller's serializer wrote it.
        version: The version of this write: an int of at least 1 that grows with each write
            of the scope and is never given again to the same key, even after ``delete``.
        applied: The idempotency keys the store recorded for the scope, oldest first: the
            newest ``applied_window`` of them.
        timers: The scope's timers, by name.
    """

    data: bytes
    version: int
    applied: tuple[str, ...] = ()
    timers: Mapping[str, Timer] = field(default_factory=dict)
    applied_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timers", _timers(self.timers))
        object.__setattr__(self, "applied", _applied(self.applied))
        object.__setattr__(self, "applied_set", frozenset(self.applied))

    def has_applied(self, idempotency_key: str) -> bool:
        """Whether the event with this idempotency key is in ``applied`` (in O(1))."""
        return idempotency_key in self.applied_set


@dataclass(frozen=True, slots=True)
class StateWrite:
    """One scope's write, for ``StateStore.save_many`` (``save`` takes the same fields).

    Attributes:
        key: The scope.
        data: Its new state (bytes; a bytearray or memoryview is copied into bytes).
        expect_version: The version the caller loaded, or ``None`` for a scope it found
            absent; any other version in the store refuses the write with ``StateConflict``.
        applied_keys: Idempotency keys of the events this write applies, recorded with it;
            a key already recorded for the scope is not recorded again.
        timers: The scope's timers after this write, all of them (``{}`` cancels every
            timer); ``None`` keeps the timers as they are.

    Raises:
        InvalidStateWrite: A field of the wrong type: ``applied_keys`` given as one str,
            a version that is not an int of at least 1, a timer that is not a ``Timer``.
    """

    key: StateKey
    data: bytes
    expect_version: int | None
    applied_keys: tuple[str, ...] = ()
    timers: Mapping[str, Timer] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, StateKey):
            raise InvalidStateWrite(f"a state key must be a StateKey, got {self.key!r:.100}")
        data: object = self.data
        if isinstance(data, bytearray | memoryview):
            object.__setattr__(self, "data", bytes(data))
        elif not isinstance(data, bytes):
            raise InvalidStateWrite(
                f"state data must be bytes, got {type(data).__name__} for {self.key}"
            )
        version = self.expect_version
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise InvalidStateWrite(
                f"expect_version must be None or an int of at least 1, got {version!r}"
            )
        object.__setattr__(self, "applied_keys", _applied(self.applied_keys))
        if self.timers is not None:
            object.__setattr__(self, "timers", _timers(self.timers))


class DueTimer(NamedTuple):
    """A timer that is due, as ``StateStore.due_timers`` lists it: ``(key, name, timer)``."""

    key: StateKey
    name: str
    timer: Timer


def next_state(
    previous: StoredState | None, write: StateWrite, version: int, applied_window: int
) -> StoredState:
    """What ``load`` returns after ``write`` was stored as ``version``: the meaning of a write.

    ``applied`` is the previous keys, then the write's keys not already among them, of which
    the newest ``applied_window`` are kept; ``timers`` are the write's, or the previous ones
    when the write's are ``None``. Callers may use it to keep the state they hold current.

    Args:
        previous: The state the write was checked against (``None``: a new scope).
        write: The write.
        version: The version the store gave it.
        applied_window: How many applied keys the store keeps per scope (at least 1).
    """
    applied = list(previous.applied) if previous is not None else []
    seen = set(applied)
    for key in write.applied_keys:
        if key not in seen:
            seen.add(key)
            applied.append(key)
    if write.timers is not None:
        timers: Mapping[str, Timer] = write.timers
    else:
        timers = previous.timers if previous is not None else {}
    return StoredState(write.data, version, tuple(applied[-applied_window:]), timers)
