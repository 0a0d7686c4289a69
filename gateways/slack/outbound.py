"""What the Slack gateway sends: ``chat.send`` and ``chat.react`` as Web API arguments
(https://docs.slack.dev/reference/methods/chat.postMessage, ``reactions.add``,
``reactions.remove``)."""

from __future__ import annotations

from typing import Any

from gateways.slack.events import Threads
from layer.types import ChatReactEvent, ChatSendMessageEvent

__all__ = ["NATIVE_KEYS", "post_message_args", "reaction_args"]

#: ``native`` keys of ``chat.send`` merged into ``chat.postMessage``'s arguments
#: (https://docs.slack.dev/reference/methods/chat.postMessage).
NATIVE_KEYS = frozenset(
    {
        "blocks",
        "attachments",
        "unfurl_links",
        "unfurl_media",
        "icon_emoji",
        "icon_url",
        "username",
        "metadata",
        "reply_broadcast",
        "link_names",
        "parse",
    }
)


def post_message_args(
    channel: str, event: ChatSendMessageEvent, threads: Threads
) -> tuple[dict[str, Any], str | None]:
    """``chat.postMessage``'s arguments for ``event`` in ``channel``, and its thread.

    The thread: ``event["thread"]``, else the thread of ``reply_to`` (a reply starts one
    under a top-level message). ``format: markdown`` is a ``markdown`` block with ``text``
    as the notification fallback; ``plain`` is ``mrkdwn: false``. ``native`` keys are
    merged in last.
    """
    text = event["text"]
    args: dict[str, Any] = {"channel": channel}
    if text:
        args["text"] = text
    thread = event["thread"]
    reply_to = event["reply_to"]
    if thread is None and reply_to is not None:
        thread = threads.reply_thread(channel, reply_to)
    if thread:
        args["thread_ts"] = thread
    native = event["native"] or {}
    if event["format"] == "markdown":
        if text and "blocks" not in native:
            args["blocks"] = [{"type": "markdown", "text": text}]
    else:
        args["mrkdwn"] = False
    args.update(native)
    return args, thread


def reaction_args(channel: str, event: ChatReactEvent) -> tuple[str, dict[str, str], str]:
    """``(method, arguments, harmless error)`` for ``event``: ``reactions.add`` (where
    ``already_reacted`` is no error) or ``reactions.remove`` (``no_reaction``)."""
    args = {
        "channel": channel,
        "timestamp": event["message_id"],
        "name": event["reaction"].strip(":"),
    }
    if event.get("remove", False):
        return "reactions.remove", args, "no_reaction"
    return "reactions.add", args, "already_reacted"
