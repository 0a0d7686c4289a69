"""Fast copies of messages, so that senders and receivers never share mutable state.

Messages are trees of the values the Channels layer spec allows (dict, list, str, bytes,
int, float, bool, None). Those trees are copied here in a few hundred nanoseconds, where
``copy.deepcopy`` takes microseconds: dicts and lists are copied recursively, immutable
leaves (and tuples of them) are shared, and anything else falls back to ``copy.deepcopy``.

Unlike ``deepcopy``, a value referenced twice in a message becomes two copies, as it would
through any serializing layer (Redis). Nesting deeper than ``MAX_DEPTH`` containers (which
is what a cyclic message does) raises ``NestingError``: the copier counts levels itself
rather than hit Python's recursion limit, since a ``RecursionError`` caught on CPython 3.11
can leave the interpreter's parser unable to compile code afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from typing import Any

__all__ = ["MAX_DEPTH", "NestingError", "copier_for", "copy_message", "copy_value"]

#: Most containers nested in one message (msgpack, which channels_redis uses, allows 511).
MAX_DEPTH = 100


class NestingError(ValueError):
    """A message nests containers deeper than ``MAX_DEPTH``, or is cyclic."""


def _too_deep() -> NestingError:
    return NestingError(f"message nests more than {MAX_DEPTH} containers, or is cyclic")


_SHARED: frozenset[type] = frozenset({str, bytes, int, float, bool, type(None)})
"""Immutable leaf types, shared between copies. Exact types: subclasses take the slow path."""


def copy_message(message: dict[str, Any], _depth: int = 0) -> dict[str, Any]:
    """Return a copy of a message that shares nothing mutable with it.

    Args:
        message: A dict of JSON/msgpack-like values (keys are shared: they are hashable).

    Returns:
        The copy.

    Raises:
        NestingError: The message is cyclic or nested deeper than ``MAX_DEPTH``.
    """
    if _depth >= MAX_DEPTH:
        raise _too_deep()
    out = message.copy()
    for key, value in out.items():
        cls = value.__class__
        if cls in _SHARED:
            continue
        if cls is dict:
            out[key] = copy_message(value, _depth + 1)
        elif cls is list:
            out[key] = _copy_list(value, _depth + 1)
        else:
            out[key] = copy_value(value, _depth + 1)
    return out


def _copy_list(items: list[Any], depth: int) -> list[Any]:
    if depth >= MAX_DEPTH:
        raise _too_deep()
    out = items.copy()
    for index, value in enumerate(out):
        if value.__class__ not in _SHARED:
            out[index] = copy_value(value, depth + 1)
    return out


def copy_value(value: Any, _depth: int = 0) -> Any:
    """Return a copy of any message value; immutable leaves come back as they are.

    Args:
        value: A value inside a message.

    Returns:
        The copy (or ``value`` itself when it is immutable).

    Raises:
        NestingError: The value is cyclic or nested deeper than ``MAX_DEPTH``.
    """
    cls = value.__class__
    if cls in _SHARED:
        return value
    if cls is dict:
        return copy_message(value, _depth)
    if cls is list:
        return _copy_list(value, _depth)
    if _depth >= MAX_DEPTH:
        raise _too_deep()
    if cls is tuple:
        if all(item.__class__ in _SHARED for item in value):
            return value
        return tuple(copy_value(item, _depth + 1) for item in value)
    return copy.deepcopy(value)


def copier_for(message: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Return a function that copies ``message`` faster than ``copy_message``, many times.

    The message's shape is read once: the function copies only its containers, without
    looking at its leaves again. ``group_send`` uses it to give each member its own copy.
    It is valid only for ``message`` itself (or one of exactly the same shape).

    Args:
        message: The message to copy repeatedly; it must not change in between.

    Returns:
        ``copier(message)`` returns a copy that shares nothing mutable with ``message``.

    Raises:
        NestingError: The message is cyclic or nested deeper than ``MAX_DEPTH``.
    """
    copier = _compile(message, 0)
    return dict.copy if copier is None else copier


def _compile(value: Any, depth: int) -> Callable[[Any], Any] | None:
    """A copier for ``value``'s shape; None when ``value`` is immutable and can be shared."""
    cls = value.__class__
    if cls in _SHARED:
        return None
    if depth >= MAX_DEPTH:
        raise _too_deep()
    if cls is dict:
        dict_parts = [
            (key, c) for key, item in value.items() if (c := _compile(item, depth + 1)) is not None
        ]
        return partial(_copy_dict_parts, dict_parts) if dict_parts else dict.copy
    if cls is list:
        list_parts = [
            (index, c) for index, item in enumerate(value) if (c := _compile(item, depth + 1))
        ]
        return partial(_copy_list_parts, list_parts) if list_parts else list.copy
    if cls is tuple and all(item.__class__ in _SHARED for item in value):
        return None
    return copy_value


def _copy_dict_parts(
    parts: list[tuple[Any, Callable[[Any], Any]]], value: dict[Any, Any]
) -> dict[Any, Any]:
    out = value.copy()
    for key, copier in parts:
        out[key] = copier(value[key])
    return out


def _copy_list_parts(parts: list[tuple[int, Callable[[Any], Any]]], value: list[Any]) -> list[Any]:
    out = value.copy()
    for index, copier in parts:
        out[index] = copier(value[index])
    return out
