"""Matrix room events in, chat events out, and message content out: the pure part of the
Matrix gateway.

Shapes are the Matrix client-server API's (https://spec.matrix.org/v1.11/client-server-api/):
``m.room.message`` and its ``msgtype``s (section 11.2.1), rich replies ``m.in_reply_to``
(11.19), threads ``m.thread`` (11.34, MSC3440), user mentions ``m.mentions`` (11.2.1.8,
spec v1.7), reactions ``m.annotation`` (11.36) and authenticated media (11.7, v1.11). The
chat events are those of ``docs/specs/chat.md`` (``layer/types.py``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

from markdown_it import MarkdownIt

from layer.types import ChatAttachment

__all__ = [
    "FILE_MSGTYPES",
    "TEXT_MSGTYPES",
    "attachments",
    "body_text",
    "download_url",
    "mentions_user",
    "message_content",
    "reaction_key",
    "relation",
    "reply_to_of",
    "strip_reply_fallback",
    "thread_of",
]

#: ``msgtype``s whose ``body`` is the message's text.
TEXT_MSGTYPES = frozenset({"m.text", "m.notice", "m.emote"})
#: ``msgtype``s of a file, whose ``body`` is its file name or caption (spec v1.10).
FILE_MSGTYPES = frozenset({"m.image", "m.file", "m.audio", "m.video"})

#: Reaction names the chat protocol uses (Slack's) and the emoji Matrix sends as the key.
_EMOJI = {
    "thumbsup": "👍",
    "+1": "👍",
    "thumbsdown": "👎",
    "-1": "👎",
    "heart": "❤️",
    "smile": "😄",
    "tada": "🎉",
    "eyes": "👀",
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "x": "❌",
    "warning": "⚠️",
    "fire": "🔥",
    "rocket": "🚀",
    "ok_hand": "👌",
    "wave": "👋",
}

_MARKDOWN = MarkdownIt("commonmark")


def relation(content: dict[str, Any]) -> dict[str, Any]:
    """The content's ``m.relates_to``, or ``{}``."""
    relates = content.get("m.relates_to")
    return relates if isinstance(relates, dict) else {}


def thread_of(content: dict[str, Any]) -> str | None:
    """The thread a message is in: the root's event id of an ``m.thread`` relation, else
    ``None`` (a thread's root is itself a top-level message)."""
    relates = relation(content)
    event_id = relates.get("event_id")
    if relates.get("rel_type") == "m.thread" and isinstance(event_id, str):
        return event_id
    return None


def reply_to_of(content: dict[str, Any]) -> str | None:
    """The event a message replies to (``m.in_reply_to``), ``None`` when it is no reply;
    inside a thread, the fallback reply of clients without thread support
    (``is_falling_back``) is no reply."""
    relates = relation(content)
    if relates.get("rel_type") == "m.thread" and relates.get("is_falling_back", False):
        return None
    in_reply_to = relates.get("m.in_reply_to")
    event_id = in_reply_to.get("event_id") if isinstance(in_reply_to, dict) else None
    return event_id if isinstance(event_id, str) else None


def strip_reply_fallback(body: str) -> str:
    """``body`` without the quoted fallback of a rich reply (the ``> `` lines before the
    first other line, section 11.19.1, removed in v1.13 but still sent by older clients)."""
    if not body.startswith("> "):
        return body
    lines = body.split("\n")
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    return "\n".join(lines[index:]).lstrip("\n")


def body_text(content: dict[str, Any]) -> str:
    """The text of an ``m.room.message``: its ``body`` (without a reply's fallback quote)
    for a text, notice or emote; a file's caption (its ``body`` when ``filename`` is set and
    differs) or ``""``; for another ``msgtype``, its ``body``."""
    body = content.get("body")
    body = body if isinstance(body, str) else ""
    msgtype = content.get("msgtype")
    if msgtype in FILE_MSGTYPES:
        filename = content.get("filename")
        return body if isinstance(filename, str) and filename and body != filename else ""
    if reply_to_of(content) is not None:
        return strip_reply_fallback(body)
    return body


def mentions_user(content: dict[str, Any], user_id: str, names: list[str]) -> bool:
    """Whether a message mentions ``user_id``.

    With ``m.mentions`` (spec v1.7, section 11.2.1.8), only its ``user_ids`` count;
    without it (older clients), the user id or one of ``names`` (the display name) as a
    word of the body, as the legacy push rules ``.m.rule.contains_display_name`` and
    ``.m.rule.contains_user_name`` match.

    Args:
        content: The event's content.
        user_id: ``@bot:example.org``.
        names: Display names and local part to look for without ``m.mentions``.
    """
    mentions = content.get("m.mentions")
    if isinstance(mentions, dict):
        ids = mentions.get("user_ids")
        return isinstance(ids, list) and user_id in ids
    body = content.get("body")
    if not isinstance(body, str):
        return False
    body = strip_reply_fallback(body)
    if user_id in body:
        return True
    return any(
        re.search(rf"(?<!\w){re.escape(name)}(?!\w)", body, re.IGNORECASE) for name in names if name
    )


def download_url(homeserver: str, mxc: str) -> str | None:
    """The authenticated download URL (spec v1.11, ``/_matrix/client/v1/media/download``) of
    an ``mxc://server/media_id`` URI; ``None`` for anything else."""
    parts = urlsplit(mxc)
    media_id = parts.path.lstrip("/")
    if parts.scheme != "mxc" or not parts.netloc or not media_id:
        return None
    return (
        f"{homeserver}/_matrix/client/v1/media/download/"
        f"{quote(parts.netloc, safe='')}/{quote(media_id, safe='')}"
    )


def attachments(content: dict[str, Any], homeserver: str) -> list[ChatAttachment]:
    """The file of an ``m.image``, ``m.file``, ``m.audio`` or ``m.video`` as one attachment
    (``url``: its download URL, which needs the bot's access token); ``[]`` otherwise."""
    if content.get("msgtype") not in FILE_MSGTYPES:
        return []
    info = content.get("info")
    info = info if isinstance(info, dict) else {}
    source = content.get("url")
    if not isinstance(source, str):  # an encrypted file: its URL is in content["file"]
        encrypted = content.get("file")
        source = encrypted.get("url") if isinstance(encrypted, dict) else None
    name = content.get("filename") or content.get("body")
    size = info.get("size")
    mimetype = info.get("mimetype")
    return [
        {
            "name": name if isinstance(name, str) else None,
            "url": download_url(homeserver, source) if isinstance(source, str) else None,
            "mimetype": mimetype if isinstance(mimetype, str) else None,
            "size": size if isinstance(size, int) else None,
        }
    ]


def reaction_key(reaction: str) -> str:
    """The key of an ``m.annotation`` for a chat reaction name: its emoji for the common
    names (``thumbsup`` is 👍), else the name itself (an emoji given as it is)."""
    return _EMOJI.get(reaction, reaction)


def message_content(
    text: str,
    *,
    msgtype: str,
    markdown: bool,
    thread: str | None,
    reply_to: str | None,
    reply_author: str | None,
    native: dict[str, Any] | None,
) -> dict[str, Any]:
    """The content of an ``m.room.message`` the bot sends.

    Args:
        text: The body.
        msgtype: ``"m.notice"`` or ``"m.text"``.
        markdown: Also send ``formatted_body``, ``text`` rendered as HTML (CommonMark), in
            format ``org.matrix.custom.html``.
        thread: The thread's root event id, to post in (an ``m.thread`` relation whose
            fallback reply is ``reply_to``, else the root), or ``None``.
        reply_to: The event id answered (``m.in_reply_to``), or ``None``.
        reply_author: The answered event's sender, mentioned in ``m.mentions``; ``None``
            mentions nobody (an empty ``m.mentions``: no notification storm).
        native: More content keys, as the spec names them, over the ones built here.

    Returns:
        The content dict.
    """
    content: dict[str, Any] = {"msgtype": msgtype, "body": text}
    if markdown:
        content["format"] = "org.matrix.custom.html"
        content["formatted_body"] = _MARKDOWN.render(text).strip()
    if thread is not None:
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": thread,
            "is_falling_back": reply_to is None,
            "m.in_reply_to": {"event_id": reply_to or thread},
        }
    elif reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    content["m.mentions"] = {"user_ids": [reply_author]} if reply_author else {}
    if native:
        content.update(native)
    return content
