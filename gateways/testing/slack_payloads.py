"""Slack payloads as Slack sends them, for tests: events, slash commands, block actions.

Each builder returns a plain ``dict`` shaped as Slack documents it, with realistic ids and
timestamps filled in, for ``SlackTestServer`` (``gateways.testing.slack_server``) to deliver over
Socket Mode or the Events API, or for your own tests. The sources:

- Events API envelope (``event_callback``): https://docs.slack.dev/apis/events-api/
- ``message`` events (``channel_type`` ``channel``, ``group``, ``im``, ``mpim``; thread
  replies carry ``thread_ts``): https://docs.slack.dev/reference/events/message
- ``app_mention``: https://docs.slack.dev/reference/events/app_mention
- ``reaction_added`` / ``reaction_removed``: https://docs.slack.dev/reference/events/reaction_added
- Slash commands (form fields): https://docs.slack.dev/interactivity/implementing-slash-commands
- ``block_actions``: https://docs.slack.dev/reference/interaction-payloads/block_actions-payload
- Request signing (``v0`` HMAC-SHA256):
  https://docs.slack.dev/authentication/verifying-requests-from-slack
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import string
import time
import uuid
from typing import Any, Literal

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_TEAM_ID",
    "DEFAULT_USER_ID",
    "ChannelType",
    "app_mention",
    "block_actions",
    "event_callback",
    "message",
    "new_event_id",
    "new_ts",
    "reaction",
    "sign",
    "slash_command",
]

#: The ids the builders and ``SlackTestServer`` use unless told otherwise.
DEFAULT_TEAM_ID = "T0TEST0001"
DEFAULT_APP_ID = "A0TEST0001"
DEFAULT_USER_ID = "U0USER0001"

#: ``channel_type`` of a ``message`` event: a public channel, a private channel
#: (``group``), a DM (``im``) or a group DM (``mpim``).
ChannelType = Literal["channel", "group", "im", "mpim"]

_ALNUM = string.ascii_uppercase + string.digits
_micros = itertools.count(100)


def new_ts() -> str:
    """A new message timestamp (``"1712345678.000123"``), increasing within the process.

    Slack identifies a message by its channel and ``ts``: seconds since the epoch, six
    decimals, unique in the channel.
    """
    micro = next(_micros)
    return f"{int(time.time()) + micro // 1_000_000}.{micro % 1_000_000:06d}"


def new_event_id() -> str:
    """A new Events API ``event_id`` (``"Ev"`` and ten letters or digits)."""
    return "Ev" + "".join(secrets.choice(_ALNUM) for _ in range(10))


def sign(signing_secret: str, timestamp: str, body: str) -> str:
    """The ``X-Slack-Signature`` of a request: ``v0=`` and the hex HMAC-SHA256, keyed by the
    signing secret, of ``v0:{timestamp}:{body}``.

    Args:
        signing_secret: The app's signing secret.
        timestamp: The ``X-Slack-Request-Timestamp`` header (whole seconds, as text).
        body: The raw request body.
    """
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def message(
    channel: str,
    text: str,
    *,
    user: str = DEFAULT_USER_ID,
    channel_type: ChannelType = "channel",
    ts: str | None = None,
    thread_ts: str | None = None,
    team: str = DEFAULT_TEAM_ID,
    subtype: str | None = None,
    bot_id: str | None = None,
    files: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``message`` event.

    Args:
        channel: Channel id: ``C...`` (public), ``G...`` (private or legacy group DM),
            ``D...`` (DM).
        text: The text, with Slack's markup (``<@U123>`` for a mention).
        user: The author's user id.
        channel_type: ``channel``, ``group``, ``im`` or ``mpim``.
        ts: The message's timestamp; a new one when ``None``.
        thread_ts: The thread's parent ``ts`` for a reply in a thread.
        team: The workspace id.
        subtype: A message subtype (``bot_message``, ``file_share``, ``message_changed``...).
        bot_id: Set for messages posted by a bot (the gateway's own, or another app's).
        files: File objects (``name``, ``mimetype``, ``size``, ``url_private``...).
    """
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel_type": channel_type,
        "team": team,
    }
    if bot_id is None and subtype is None:
        event["client_msg_id"] = str(uuid.uuid4())
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = user
    if subtype is not None:
        event["subtype"] = subtype
    if bot_id is not None:
        event["bot_id"] = bot_id
    if files is not None:
        event["files"] = files
        event.setdefault("subtype", "file_share")
    return event


def app_mention(
    channel: str,
    text: str,
    *,
    user: str = DEFAULT_USER_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
    team: str = DEFAULT_TEAM_ID,
) -> dict[str, Any]:
    """An ``app_mention`` event: a message mentioning the app's bot user (``<@U...>``).

    Slack sends it beside the ``message`` event of the same message (same ``channel`` and
    ``ts``) when the app subscribes to both; it has no ``channel_type``.
    """
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "team": team,
        "client_msg_id": str(uuid.uuid4()),
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def reaction(
    channel: str,
    message_ts: str,
    name: str,
    *,
    user: str = DEFAULT_USER_ID,
    added: bool = True,
    item_user: str | None = None,
) -> dict[str, Any]:
    """A ``reaction_added`` (or with ``added=False``, ``reaction_removed``) event on a message.

    Args:
        channel: The message's channel id.
        message_ts: The message's ``ts``.
        name: The emoji name without colons (``"thumbsup"``).
        user: Who reacted.
        added: ``reaction_added`` when true, else ``reaction_removed``.
        item_user: The message's author.
    """
    event: dict[str, Any] = {
        "type": "reaction_added" if added else "reaction_removed",
        "user": user,
        "reaction": name,
        "item": {"type": "message", "channel": channel, "ts": message_ts},
        "event_ts": new_ts(),
    }
    if item_user is not None:
        event["item_user"] = item_user
    return event


def event_callback(
    event: dict[str, Any],
    *,
    team_id: str = DEFAULT_TEAM_ID,
    api_app_id: str = DEFAULT_APP_ID,
    bot_user_id: str = "U0BOT00001",
    event_id: str | None = None,
) -> dict[str, Any]:
    """The Events API body wrapping ``event`` (``"type": "event_callback"``).

    Args:
        event: An event from ``message``, ``app_mention``, ``reaction``...
        team_id: The workspace id.
        api_app_id: The app's id.
        bot_user_id: The bot user the event is delivered to (``authorizations``).
        event_id: The delivery's id; a new one when ``None``. A retried delivery keeps it.
    """
    return {
        "token": "verification-token-unused",
        "team_id": team_id,
        "context_team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or new_event_id(),
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-" + secrets.token_hex(16),
    }


def slash_command(
    command: str,
    text: str = "",
    *,
    channel_id: str = "C0CHAN0001",
    channel_name: str = "general",
    user_id: str = DEFAULT_USER_ID,
    user_name: str = "alice",
    team_id: str = DEFAULT_TEAM_ID,
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, str]:
    """A slash command's fields (form-encoded over HTTP; the envelope payload in Socket Mode).

    Args:
        command: The command with its slash (``"/temp"``).
        text: What follows the command (``"kitchen"``).
        channel_id: Where it was typed; ``channel_name`` is ``"directmessage"`` in a DM.
        user_id: Who typed it; ``user_name`` their handle.
    """
    return {
        "token": "verification-token-unused",
        "team_id": team_id,
        "team_domain": "test",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": f"https://hooks.slack.com/commands/{team_id}/{secrets.token_hex(6)}",
        "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**9)}.{uuid.uuid4().hex}",
    }


def block_actions(
    action_id: str,
    *,
    value: str | None = None,
    channel_id: str = "C0CHAN0001",
    channel_name: str = "general",
    message_ts: str | None = None,
    thread_ts: str | None = None,
    user_id: str = DEFAULT_USER_ID,
    user_name: str = "alice",
    block_id: str = "actions",
    bot_user_id: str = "U0BOT00001",
    team_id: str = DEFAULT_TEAM_ID,
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, Any]:
    """A ``block_actions`` payload: a button pressed on a message the app posted.

    Over HTTP it is sent form-encoded as ``payload=<json>``; in Socket Mode it is the payload
    of an ``interactive`` envelope.

    Args:
        action_id: The button's ``action_id``.
        value: The button's ``value``.
        channel_id: The message's channel.
        message_ts: The message's ``ts``; a new one when ``None``.
        thread_ts: The message's thread, when it was posted in one.
        user_id: Who pressed it.
    """
    message_ts = message_ts or new_ts()
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel_id,
        "is_ephemeral": False,
    }
    posted: dict[str, Any] = {
        "type": "message",
        "user": bot_user_id,
        "ts": message_ts,
        "text": "",
        "blocks": [{"type": "actions", "block_id": block_id, "elements": []}],
    }
    if thread_ts is not None:
        container["thread_ts"] = thread_ts
        posted["thread_ts"] = thread_ts
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": action_id, "emoji": True},
        "type": "button",
        "action_ts": new_ts(),
    }
    if value is not None:
        action["value"] = value
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": "verification-token-unused",
        "container": container,
        "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**9)}.{uuid.uuid4().hex}",
        "team": {"id": team_id, "domain": "test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": posted,
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/{team_id}/{secrets.token_hex(6)}",
        "actions": [action],
    }
