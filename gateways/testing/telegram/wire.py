"""Reading a Bot API request as the Bot API does (https://core.telegram.org/bots/api#making-requests):
arguments from the query string, a URL-encoded or multipart form, or a JSON body; in a form,
objects and arrays are JSON strings."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from aiohttp import web

from gateways.testing.telegram.api import ApiError

__all__ = ["arguments", "decoded"]


async def arguments(request: web.Request) -> dict[str, Any]:
    """The request's arguments, JSON strings decoded; a file field is ``"<file>"``."""
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "Bad Request: can't parse JSON body") from None
            if isinstance(body, dict):
                args.update(body)
        else:
            for key, value in (await request.post()).items():
                args[key] = value if isinstance(value, str) else "<file>"
    return {key: decoded(value) for key, value in args.items()}


def decoded(value: Any) -> Any:
    """A form value that is a JSON object or array, decoded; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        with contextlib.suppress(json.JSONDecodeError):
            return json.loads(value)
    return value
