"""The one error of the ``config`` package, located by file, line and key path.

A message reads ``gateway.yaml:7: gateways.devices.broker: <what is wrong>``; parts that are
unknown are left out. One :class:`ConfigError` may carry several problems (pydantic reports
every invalid key at once); its ``str()`` then lists them all, one per line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["ConfigError", "ConfigPath", "ImportFromStringError", "format_path"]

ConfigPath = tuple[str | int, ...]
"""A key path into the YAML document: mapping keys (``str``) and list indices (``int``)."""

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: Iterable[str | int]) -> str:
    """Render a key path the way a user reads it in the YAML file.

    Args:
        path: Mapping keys and list indices from the document root.

    Returns:
        ``"gateways.devices.subscriptions[0].topic"``; a key that is not a plain word (a logger
        name with dots, a key with spaces) is quoted: ``logging.loggers["aiomqtt.client"]``.
        The empty path renders as ``""``.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


class ConfigError(Exception):
    """The configuration is wrong: a file that cannot be read or parsed, a key that is unknown,
    missing or invalid, an unset environment variable, an import path that does not resolve.

    Attributes:
        problem: What is wrong, quoting the offending value (never a secret's value).
        path: Key path of the offending key from the document root, ``()`` if unknown.
        line: 1-based line in ``file`` of that key, ``None`` if unknown.
        file: Name of the configuration file, ``None`` if unknown.
        errors: Every problem this error reports, each a located :class:`ConfigError`; just
            ``[self]`` for a single problem.
    """

    problem: str
    path: ConfigPath
    line: int | None
    file: str | None

    def __init__(
        self,
        problem: str = "",
        *,
        path: Sequence[str | int] = (),
        line: int | None = None,
        file: str | None = None,
        errors: Sequence[ConfigError] = (),
    ) -> None:
        """Build an error about one problem, or about several.

        Args:
            problem: What is wrong, e.g. ``"unknown key 'colour'"``.
            path: Key path of the offending key.
            line: 1-based line of that key.
            file: Name of the configuration file.
            errors: Several located problems; when given, ``str()`` lists them all, and
                ``problem``, ``path``, ``line`` and ``file`` that are not given are taken from
                the first of them.
        """
        self._errors = list(errors)
        first = self._errors[0] if self._errors else None
        self.problem = problem or (first.problem if first is not None else "")
        self.path = tuple(path) if path or first is None else first.path
        self.line = line if line is not None or first is None else first.line
        self.file = file if file is not None or first is None else first.file
        super().__init__(str(self))

    @property
    def errors(self) -> list[ConfigError]:
        """Every problem this error reports (``[self]`` for a single problem)."""
        return list(self._errors) if self._errors else [self]

    @property
    def location(self) -> str:
        """``"gateway.yaml:7: gateways.devices.broker"``, with the unknown parts left out."""
        parts: list[str] = []
        if self.file is not None and self.line is not None:
            parts.append(f"{self.file}:{self.line}")
        elif self.file is not None:
            parts.append(self.file)
        elif self.line is not None:
            parts.append(f"line {self.line}")
        if self.path:
            parts.append(format_path(self.path))
        return ": ".join(parts)

    def __str__(self) -> str:
        if self._errors:
            return "\n".join(str(error) for error in self._errors)
        location = self.location
        return f"{location}: {self.problem}" if location else self.problem

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the location through pickling (multiprocessing, pytest-xdist).
        return (
            _rebuild,
            (type(self), self.problem, self.path, self.line, self.file, self._errors),
        )


def _rebuild(
    cls: type[ConfigError],
    problem: str,
    path: ConfigPath,
    line: int | None,
    file: str | None,
    errors: list[ConfigError],
) -> ConfigError:
    return cls(problem, path=path, line=line, file=file, errors=errors)


class ImportFromStringError(ConfigError):
    """An import path (``"package.module:attr"``) is malformed or does not resolve."""
