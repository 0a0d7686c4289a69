"""``${VAR}`` interpolation of environment variables into configuration strings.

The forms are the POSIX shell's (and Docker Compose's) parameter expansion, a subset:

- ``${VAR}``: the value of ``VAR``; an error if ``VAR`` is not set.
- ``${VAR:-default}``: the value of ``VAR`` if it is set and not empty, else ``default``
  (taken literally, up to the first ``}``; it may be empty).
- ``$$``: a literal ``$``.

Any other ``$`` is kept as it is (so a password may hold a ``$``), but ``${`` must start one of
the forms above. The result is always a string: pydantic coerces ``"1883"`` to ``1883`` where a
field is an ``int``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["InterpolationError", "interpolate"]

_TOKEN = re.compile(
    r"\$(?:"
    r"(?P<dollar>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|(?P<invalid>\{[^}]*\}?)"
    r")"
)


class InterpolationError(ValueError):
    """A ``${...}`` reference is malformed or names an unset variable without a default.

    The message quotes the reference but not the rest of the string, which may be a secret.

    Attributes:
        variable: The variable's name, ``None`` for a malformed reference.
    """

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Replace ``${VAR}``, ``${VAR:-default}`` and ``$$`` in ``text``.

    Args:
        text: A string scalar from the YAML file.
        environ: The environment to read variables from (normally ``os.environ``).

    Returns:
        ``text`` with every reference replaced; ``text`` itself if it holds no ``$``.

    Raises:
        InterpolationError: A variable is unset and has no default, or a ``${`` does not start
            a valid reference (``${}``, ``${1X}``, ``${X:?err}``, no closing ``}``).
    """
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match["dollar"] is not None:
            return "$"
        name = match["name"]
        if name is None:
            raise InterpolationError(
                f"invalid reference {match[0]!r}: use ${{VAR}} or ${{VAR:-default}}, "
                "and $$ for a literal $"
            )
        default = match["default"]
        value = environ.get(name)
        if default is not None:
            return value if value else default
        if value is None:
            raise InterpolationError(
                f"environment variable {name!r} is not set "
                f"(write ${{{name}:-default}} to give it a default)",
                variable=name,
            )
        return value

    return _TOKEN.sub(replace, text)
