"""The fixed components of every AsyncAPI document ``asgi-gateway asyncapi`` writes
(``gateways.daemon.asyncapi``): the messages of an MQTT route with no payload model (any
bytes, any JSON), and the chat protocol's schemas and messages (``docs/specs/chat.md``)."""

from __future__ import annotations

from typing import Any

__all__ = ["BYTES_MESSAGE", "CHAT_MESSAGES", "CHAT_SCHEMAS", "JSON_MESSAGE"]

BYTES_MESSAGE: dict[str, Any] = {
    "name": "mqtt.bytes",
    "summary": "Any payload (bytes)",
    "contentType": "application/octet-stream",
    "payload": {"type": "string", "format": "binary"},
}
JSON_MESSAGE: dict[str, Any] = {
    "name": "mqtt.json",
    "summary": "Any JSON payload",
    "contentType": "application/json",
    "payload": {"description": "Any JSON value."},
}
_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
CHAT_SCHEMAS: dict[str, Any] = {
    "ChatUser": {
        "type": "object",
        "description": "Who posted, ran or reacted (docs/specs/chat.md, User).",
        "required": ["id", "name", "is_bot"],
        "properties": {
            "id": {"type": "string"},
            "name": _NULLABLE_STRING,
            "is_bot": {"type": "boolean"},
            "identity": _NULLABLE_STRING,
        },
    },
    "ChatAttachment": {
        "type": "object",
        "properties": {
            "name": _NULLABLE_STRING,
            "url": _NULLABLE_STRING,
            "mimetype": _NULLABLE_STRING,
            "size": {"type": ["integer", "null"]},
        },
    },
}
_USER = {"$ref": "#/components/schemas/ChatUser"}
CHAT_MESSAGES: dict[str, Any] = {
    "chat.message": {
        "name": "chat.message",
        "summary": "A message someone else posted in the conversation.",
        "payload": {
            "type": "object",
            "required": ["type", "id", "text", "user", "thread_id", "mentions_bot"],
            "properties": {
                "type": {"const": "chat.message"},
                "id": {"type": "string"},
                "text": {"type": "string"},
                "user": _USER,
                "thread_id": _NULLABLE_STRING,
                "mentions_bot": {"type": "boolean"},
                "attachments": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/ChatAttachment"},
                },
                "raw": {"type": "object"},
            },
        },
    },
    "chat.command": {
        "name": "chat.command",
        "summary": "A slash command run in the conversation (/temp kitchen).",
        "payload": {
            "type": "object",
            "required": ["type", "command", "text", "user"],
            "properties": {
                "type": {"const": "chat.command"},
                "command": {"type": "string", "examples": ["/temp"]},
                "text": {"type": "string"},
                "user": _USER,
                "raw": {"type": "object"},
            },
        },
    },
    "chat.send": {
        "name": "chat.send",
        "summary": "Post a message in the conversation.",
        "payload": {
            "type": "object",
            "required": ["type", "text"],
            "properties": {
                "type": {"const": "chat.send"},
                "text": {"type": "string"},
                "thread": _NULLABLE_STRING,
                "reply_to": _NULLABLE_STRING,
                "format": {"enum": ["plain", "markdown"], "default": "plain"},
                "native": {"type": ["object", "null"]},
            },
        },
    },
}
