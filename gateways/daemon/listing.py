"""What ``asgi-gateway gateways`` prints: every installed adapter, its origin and options."""

from __future__ import annotations

import inspect
import re
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from config import ConfigError
from gateways.base import GatewayOptions
from gateways.daemon.registry import installed_gateways

__all__ = ["describe_adapters", "describe_options"]


def _attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """Option descriptions from the ``Attributes:`` sections of the model's docstrings (its
    own and its bases'), one line each."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        doc = inspect.getdoc(cls) if cls.__doc__ else None
        if not doc or "Attributes:" not in doc:
            continue
        section = doc.split("Attributes:", 1)[1]
        entries = re.findall(r"^    (\w+): (.+(?:\n {8}.+)*)", section, re.MULTILINE)
        for name, text in entries:
            docs[name] = " ".join(part.strip() for part in text.splitlines())
    return docs


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    return re.sub(r"\b(?:typing|pydantic\.types|[a-z_]+(?:\.[a-z_]+)*)\.", "", text)


def describe_options(model: type[BaseModel], *, skip: frozenset[str] = frozenset()) -> list[str]:
    """One line per option of an adapter's options model: ``name: type = default  what``.

    Args:
        model: The options model (a ``GatewayOptions`` subclass).
        skip: Option names to leave out (those every gateway shares).

    Secrets (``SecretStr``) show no default value.
    """
    docs = _attribute_docs(model)
    lines = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        kind = _type_name(field.annotation)
        if field.is_required():
            head = f"{name}: {kind} (required)"
        elif field.default is PydanticUndefined or "Secret" in kind:
            head = f"{name}: {kind}"
        else:
            head = f"{name}: {kind} = {field.default!r}"
        text = docs.get(name, field.description or "")
        lines.append(f"{head}  {text}".rstrip())
    return lines


def describe_adapters() -> str:
    """The text of ``asgi-gateway gateways``: adapters by name, each with where it came from
    and its options; an adapter that cannot load or is claimed twice says why."""
    shared = frozenset(GatewayOptions.model_fields)
    out = ["Every gateway takes:"]
    out.extend(f"    {line}" for line in describe_options(GatewayOptions))
    for name, claims in sorted(installed_gateways().items()):
        origins = "; ".join(f"{claim.distribution}, {claim.value}" for claim in claims)
        out.append(f"{name}  ({origins})")
        if len(claims) > 1:
            out.append("    error: claimed by more than one distribution; uninstall one")
            continue
        try:
            cls = claims[0].load()
        except ConfigError as exc:
            out.append(f"    cannot load: {exc}")
            continue
        summary = (inspect.getdoc(cls) or "").split("\n", 1)[0]
        if summary:
            out.append(f"    {summary}")
        out.extend(f"    {line}" for line in describe_options(cls.options_model, skip=shared))
    return "\n".join(out)
