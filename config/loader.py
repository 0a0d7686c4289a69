"""Loading the YAML file: parse, locate, interpolate ``${VAR}``, validate.

The file is read with ruamel.yaml's round-trip loader (YAML 1.2, so ``yes``/``no`` are strings),
which keeps the line of every key. Duplicate keys and a document that is not a mapping are
errors. Every string value (not key) is interpolated (see :mod:`config.interpolation`); then
the plain data is validated by :class:`~config.models.Config`.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scalarbool import ScalarBoolean

from config.errors import ConfigError, ConfigPath
from config.interpolation import InterpolationError, interpolate
from config.models import Config
from config.source import SourceMap
from config.validation import config_error_from_validation

__all__ = ["load_config", "load_config_text"]


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate the daemon's YAML configuration file.

    Args:
        path: The file, e.g. ``"gateway.yaml"``; error messages name it as given.
        environ: Variables for ``${VAR}`` interpolation; ``os.environ`` if ``None``.

    Returns:
        The validated configuration; it remembers the line of every key, for
        :meth:`Config.validate_gateway_options` and :meth:`Config.error_at`.

    Raises:
        ConfigError: The file cannot be read or is not UTF-8, or see :func:`load_config_text`.
    """
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start}: {exc.reason})", file=file) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", file=file) from exc
    return load_config_text(text, filename=file, environ=environ)


def load_config_text(
    text: str, filename: str = "<string>", environ: Mapping[str, str] | None = None
) -> Config:
    """Load and validate a configuration from YAML text.

    Args:
        text: The YAML document.
        filename: Name shown in error messages.
        environ: Variables for ``${VAR}`` interpolation; ``os.environ`` if ``None``.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The YAML is invalid (with the line), has a duplicate key, is not a mapping,
            uses an unsupported tag or a non-string key, references an unset variable, or does
            not validate. Several problems are reported together in one error.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    tree = _parse(text, filename)
    if not isinstance(tree, CommentedMap):
        kind = "nothing" if tree is None else _kind(tree)
        raise ConfigError(
            f"the document must be a mapping with at least 'application' and 'gateways', "
            f"found {kind}",
            line=_document_line(text) if tree is not None else None,
            file=filename,
        )
    source = SourceMap(filename)
    source.record((), tree.lc.line + 1)
    problems: list[ConfigError] = []
    data = _plain(tree, (), source, env, problems)
    if problems:
        raise problems[0] if len(problems) == 1 else ConfigError(errors=problems)
    try:
        return Config.from_source(data, source)
    except ValidationError as exc:
        raise config_error_from_validation(exc, data=data, model=Config, source=source) from None


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _parse(text: str, filename: str) -> Any:
    try:
        return _yaml().load(text)
    except DuplicateKeyError as exc:
        raise _duplicate_key_error(text, exc, filename) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.problem and exc.context_mark is not None:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise ConfigError(
            f"invalid YAML: {problem}", line=mark.line + 1 if mark else None, file=filename
        ) from None  # ruamel's message quotes the source line, which may hold a secret
    except YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=filename) from None


def _document_line(text: str) -> int | None:
    node = _yaml().compose(text)
    return node.start_mark.line + 1 if node is not None else None


def _duplicate_key_error(text: str, exc: DuplicateKeyError, filename: str) -> ConfigError:
    mark = exc.problem_mark
    line = mark.line + 1 if mark is not None else None
    found = _find_duplicate(_yaml().compose(text), (), line)
    if found is None:  # not expected: ruamel found one
        return ConfigError(f"duplicate key: {exc.problem}", line=line, file=filename)
    path, first_line, line = found
    return ConfigError(
        f"duplicate key {path[-1]!r} (first on line {first_line})",
        path=path,
        line=line,
        file=filename,
    )


def _find_duplicate(
    node: Node | None, path: ConfigPath, line: int | None
) -> tuple[ConfigPath, int, int] | None:
    """The first duplicate key under ``node`` (on ``line`` if one is there): path, both lines."""
    first_found: tuple[ConfigPath, int, int] | None = None
    if isinstance(node, MappingNode):
        seen: dict[tuple[str, str], int] = {}
        children: list[tuple[ConfigPath, Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.value == "<<":
                continue
            key = (str(getattr(key_node.tag, "value", key_node.tag)), str(key_node.value))
            here = key_node.start_mark.line + 1
            if key in seen:
                found = ((*path, key[1]), seen[key], here)
                if here == line:
                    return found
                first_found = first_found or found
            else:
                seen[key] = here
            children.append(((*path, key[1]), value_node))
    elif isinstance(node, SequenceNode):
        children = [((*path, index), item) for index, item in enumerate(node.value)]
    else:
        return None
    for child_path, child in children:
        found_below = _find_duplicate(child, child_path, line)
        if found_below is not None and found_below[2] == line:
            return found_below
        first_found = first_found or found_below
    return first_found


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string {str(value)!r}"
    return f"the value {value!r}"


def _plain(
    node: Any,
    path: ConfigPath,
    source: SourceMap,
    env: Mapping[str, str],
    problems: list[ConfigError],
) -> Any:
    """Turn the round-trip tree into plain dicts, lists and scalars, interpolating strings and
    recording the line of every key and item in ``source``."""
    if isinstance(node, CommentedMap):
        mapping: dict[str, Any] = {}
        for key, value in node.items():
            # Keys merged in by "<<" have no own line; a tagged node may have no line data.
            position = (node.lc.data or {}).get(key)
            if not isinstance(key, str):
                problems.append(
                    ConfigError(
                        f"keys must be strings, found {key!r}; quote it",
                        path=path,
                        line=position[0] + 1 if position else source.line(path),
                        file=source.file,
                    )
                )
                continue
            child = (*path, str(key))
            if position is not None:
                source.record(child, position[0] + 1)
            mapping[str(key)] = _plain(value, child, source, env, problems)
        return mapping
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            child = (*path, index)
            position = (node.lc.data or {}).get(index)
            if position is not None:
                source.record(child, position[0] + 1)
            items.append(_plain(value, child, source, env, problems))
        return items
    if isinstance(node, str):
        try:
            return interpolate(str(node), env)
        except InterpolationError as exc:
            problems.append(source.error(path, str(exc)))
            return str(node)
    if isinstance(node, bool | ScalarBoolean):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if node is None or isinstance(node, bytes | datetime.date):
        return node
    if isinstance(node, TaggedScalar):
        problem = f"unsupported YAML tag {str(node.tag)!r}"
    else:
        problem = f"unsupported YAML value of type {type(node).__name__}"
    problems.append(source.error(path, problem))
    return None
