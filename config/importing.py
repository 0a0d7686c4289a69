"""Resolving import paths such as ``"examples.echo.app:application"``.

Two forms are accepted: uvicorn's ``"package.module:attr"`` (the attribute may be dotted,
``"module:obj.attr"``) and Channels' ``"package.module.Class"`` (split at the last dot).
"""

from __future__ import annotations

import importlib
from typing import Any

from config.errors import ImportFromStringError

__all__ = ["import_from_string", "split_import_path"]

_FORMS = "'package.module:attribute' or 'package.module.Attribute'"


def _dotted_name_ok(dotted: str) -> bool:
    return all(part.isidentifier() for part in dotted.split("."))


def split_import_path(path: str) -> tuple[str, str]:
    """Split an import path into its module and (possibly dotted) attribute, importing nothing.

    Args:
        path: ``"package.module:attr"``, ``"module:obj.attr"`` or ``"package.module.Class"``.

    Returns:
        ``(module, attribute)``, e.g. ``("package.module", "obj.attr")``.

    Raises:
        ImportFromStringError: ``path`` is empty, has no module or no attribute, has more than
            one ``:``, or a part is not a Python identifier.
    """
    if not isinstance(path, str) or not path.strip():
        raise ImportFromStringError(f"import path {path!r} is empty; expected {_FORMS}")
    if path.count(":") > 1:
        raise ImportFromStringError(f"import path {path!r} has more than one ':'")
    if ":" in path:
        module, _, attribute = path.partition(":")
    else:
        module, _, attribute = path.rpartition(".")
    if not module:
        raise ImportFromStringError(f"import path {path!r} names no module; expected {_FORMS}")
    if not attribute:
        raise ImportFromStringError(f"import path {path!r} names no attribute; expected {_FORMS}")
    if not _dotted_name_ok(module):
        raise ImportFromStringError(f"import path {path!r}: {module!r} is not a valid module name")
    if not _dotted_name_ok(attribute):
        raise ImportFromStringError(
            f"import path {path!r}: {attribute!r} is not a valid attribute name"
        )
    return module, attribute


def import_from_string(path: str) -> Any:
    """Import a module and return one of its attributes.

    An ``ImportError`` raised while the module itself runs (it imports something that is
    missing, or raises) propagates unchanged, with its own message and traceback, as in
    uvicorn's ``import_from_string``; only a module that does not exist is reported as such.

    Args:
        path: ``"package.module:attr"``, ``"module:obj.attr"`` or ``"package.module.Class"``.

    Returns:
        The attribute.

    Raises:
        ImportFromStringError: The path is malformed (see :func:`split_import_path`), the
            module (or a package above it) does not exist, or the attribute is not found.
        ImportError: Raised by the code of the module being imported.
    """
    module_name, attribute = split_import_path(path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not missing or not (module_name == missing or module_name.startswith(missing + ".")):
            raise  # the module exists; something it imports does not
        raise ImportFromStringError(
            f"could not import module {module_name!r} (from {path!r}): no module named {missing!r}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportFromStringError(
                f"Attribute {attribute!r} not found in module {module_name!r}"
                + (f" (no {part!r})" if part != attribute else "")
            ) from None
    return target
