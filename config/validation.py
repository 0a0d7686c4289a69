"""Turning a pydantic ``ValidationError`` into a located, secret-safe :class:`ConfigError`.

pydantic's ``loc`` is mapped back onto the YAML document: union member tags and ``[key]``
markers are dropped, the line comes from the :class:`SourceMap`, and the input value is quoted
only when it is not a secret (by field type ``SecretStr`` or by name, see
:mod:`config.redaction`).
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Secret, SecretBytes, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from config.errors import ConfigError, ConfigPath
from config.redaction import SECRET_MASK, is_secret_name, redact, redact_url
from config.source import SourceMap

__all__ = ["config_error_from_validation"]

_MAX_QUOTE = 80
_SECRET_TYPES = (SecretStr, SecretBytes, Secret)


def config_error_from_validation(
    exc: ValidationError,
    *,
    data: Any,
    model: type[BaseModel] | None = None,
    prefix: ConfigPath = (),
    source: SourceMap | None = None,
) -> ConfigError:
    """A :class:`ConfigError` listing every problem of ``exc``, each with its path and line.

    Args:
        exc: What ``model.model_validate(data)`` raised.
        data: The plain data that was validated (to tell real keys from pydantic's tags).
        model: The model that was validated, to list allowed keys and find secret fields.
        prefix: Key path of ``data`` in the document, e.g. ``("gateways", "devices")``.
        source: Lines of the document's keys; without it errors carry no line or file.

    Returns:
        The error (not raised); a single problem if pydantic reported one.
    """
    problems: list[ConfigError] = []
    seen: set[str] = set()
    for details in exc.errors(include_url=False):
        path = _document_path(data, details)
        full = (*prefix, *path)
        problem = _describe(details, path, model)
        error = ConfigError(
            problem,
            path=full,
            line=source.line(full) if source else None,
            file=source.file if source else None,
        )
        if str(error) not in seen:
            seen.add(str(error))
            problems.append(error)
    if len(problems) == 1:
        return problems[0]
    problems.sort(key=lambda error: error.line if error.line is not None else 0)
    return ConfigError(errors=problems)


def _document_path(data: Any, details: ErrorDetails) -> ConfigPath:
    """Follow pydantic's ``loc`` through ``data``, keeping only real keys and indices."""
    loc = details["loc"]
    path: list[str | int] = []
    current = data
    for position, part in enumerate(loc):
        in_mapping = isinstance(current, Mapping) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_mapping or in_list:
            current = current[part]
            path.append(part)
        elif position == len(loc) - 1 and details["type"] == "missing":
            path.append(part)  # the key that should be there
        # else: a union member tag, "[key]", or a function-validator tag: not in the file
    return tuple(path)


def _describe(details: ErrorDetails, path: ConfigPath, model: type[BaseModel] | None) -> str:
    kind = details["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        key = path[-1] if path else "?"
        allowed = sorted(_allowed_keys(model, path[:-1]))
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {key!r}{hint}"
    message = details["msg"]
    if kind == "value_error" and message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if kind == "assertion_error" and message.startswith("Assertion failed, "):
        message = message.removeprefix("Assertion failed, ")
    value = details["input"]
    # A validator's message may quote the value: hide URL passwords, and secrets entirely.
    message = redact_url(message)
    if _is_secret(model, path):
        if isinstance(value, str) and value:
            message = message.replace(value, SECRET_MASK)
        return f"{message} (value hidden: secret)"
    quoted = _quote(value)
    # A validator's message may already quote the string (e.g. an import path's problem).
    if isinstance(value, str) and quoted in message:
        return message
    return f"{message}; got {quoted}"


def _quote(value: Any) -> str:
    text = repr(redact(value))
    if len(text) > _MAX_QUOTE:
        text = text[: _MAX_QUOTE - 3] + "..."
    return text


def _is_secret(model: type[BaseModel] | None, path: ConfigPath) -> bool:
    if any(isinstance(part, str) and is_secret_name(part) for part in path):
        return True
    return any(
        _is_secret_type(option)
        for annotation in _annotations_at(model, path)
        for option in _members(annotation)
    )


def _is_secret_type(annotation: Any) -> bool:
    candidate = get_origin(annotation) or annotation
    return isinstance(candidate, type) and issubclass(candidate, _SECRET_TYPES)


def _allowed_keys(model: type[BaseModel] | None, path: ConfigPath) -> set[str]:
    keys: set[str] = set()
    for annotation in _annotations_at(model, path):
        for option in _members(annotation):
            if isinstance(option, type) and issubclass(option, BaseModel):
                keys.update(_field_keys(option))
    return keys


def _field_keys(model: type[BaseModel]) -> dict[str, Any]:
    """The keys a model accepts in YAML (the alias, if any) -> the field's annotation."""
    return {
        (field.validation_alias if isinstance(field.validation_alias, str) else None)
        or field.alias
        or name: field.annotation
        for name, field in model.model_fields.items()
    }


def _members(annotation: Any) -> Iterator[Any]:
    """The alternatives of an annotation: ``X | None`` -> ``X``, ``None``; ``Annotated`` unwrapped.

    Generic aliases (``dict[str, X]``) are yielded as they are.
    """
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _members(get_args(annotation)[0])
    elif origin is Union or origin is types.UnionType:
        for arg in get_args(annotation):
            yield from _members(arg)
    else:
        yield annotation


def _annotations_at(model: type[BaseModel] | None, path: ConfigPath) -> list[Any]:
    """Every annotation the value at ``path`` may have, walking ``model``'s fields."""
    current: list[Any] = [model] if model is not None else []
    for part in path:
        following: list[Any] = []
        for annotation in current:
            for option in _members(annotation):
                following.extend(_step(option, part))
        current = following
    return current


def _step(annotation: Any, part: str | int) -> list[Any]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found = _field_keys(annotation).get(part) if isinstance(part, str) else None
        return [found] if found is not None else []
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (dict, Mapping) and len(args) == 2:
        return [args[1]]
    if isinstance(part, int) and origin in (list, tuple, Sequence, set, frozenset) and args:
        return [args[0]]
    return []
