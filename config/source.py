"""Where each key of a YAML document is: key path -> line, from ruamel.yaml's round-trip tree."""

from __future__ import annotations

from collections.abc import Sequence

from config.errors import ConfigError, ConfigPath

__all__ = ["SourceMap"]


class SourceMap:
    """The 1-based line of every key and list item of one YAML document.

    Built from the round-trip tree (``CommentedMap.lc.key(k)``, ``CommentedSeq.lc.item(i)``)
    before the tree is turned into plain values, so a validation error found later can still
    point at its line.
    """

    def __init__(self, file: str | None = None, lines: dict[ConfigPath, int] | None = None):
        """Make a source map.

        Args:
            file: Name of the configuration file, shown in error messages.
            lines: Key path -> 1-based line.
        """
        self.file = file
        self._lines: dict[ConfigPath, int] = dict(lines or {})

    def record(self, path: ConfigPath, line: int) -> None:
        """Remember that the key at ``path`` is on 1-based ``line``."""
        self._lines[path] = line

    def line(self, path: Sequence[str | int]) -> int | None:
        """The line of the key at ``path``, or of its nearest enclosing key that has one.

        A key that is missing (a required key not written) thus points at the mapping that
        should hold it.

        Args:
            path: Key path from the document root.

        Returns:
            A 1-based line, or ``None`` if nothing on the path is known.
        """
        key = tuple(path)
        while True:
            found = self._lines.get(key)
            if found is not None or not key:
                return found
            key = key[:-1]

    def error(
        self, path: Sequence[str | int], problem: str, cls: type[ConfigError] = ConfigError
    ) -> ConfigError:
        """A ``cls`` error about the key at ``path``, located in this file.

        Args:
            path: Key path of the offending key.
            problem: What is wrong, quoting the offending value.
            cls: :class:`ConfigError` or a subclass.

        Returns:
            The error (not raised).
        """
        return cls(problem, path=tuple(path), line=self.line(path), file=self.file)
