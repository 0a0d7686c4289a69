"""Builders of the Teams shapes a test uses with ``TeamsTestServer``: users, conversations
(a DM, a group chat, a channel of a team) and mention entities, as the Bot Framework
activity schema and Teams name them
(https://github.com/microsoft/botframework-sdk/blob/main/specs/botframework-activity/botframework-activity.md,
https://learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/conversation-basics).
"""

from __future__ import annotations

import secrets
from typing import Any

__all__ = ["channel", "group_chat", "mention", "personal", "user"]


def user(name: str, user_id: str | None = None) -> dict[str, Any]:
    """A Teams user (``ChannelAccount``): ``id`` ``29:...``, ``name``, ``aadObjectId``."""
    return {
        "id": user_id or f"29:1{secrets.token_hex(12)}",
        "name": name,
        "aadObjectId": f"{secrets.token_hex(4)}-0000-4000-8000-{secrets.token_hex(6)}",
    }


def personal(person: dict[str, Any], tenant: str = "tenant-1") -> dict[str, Any]:
    """The DM (``personal`` conversation) of ``person`` with the bot: id ``a:...``."""
    return {
        "id": f"a:1{person['id'].removeprefix('29:1')}",
        "conversationType": "personal",
        "tenantId": tenant,
    }


def group_chat(name: str | None = None, tenant: str = "tenant-1") -> dict[str, Any]:
    """A group chat (``groupChat``): id ``19:...@thread.v2``."""
    found: dict[str, Any] = {
        "id": f"19:{secrets.token_hex(8)}@thread.v2",
        "conversationType": "groupChat",
        "isGroup": True,
        "tenantId": tenant,
    }
    if name is not None:
        found["name"] = name
    return found


def channel(name: str, team: str = "Team", tenant: str = "tenant-1") -> dict[str, Any]:
    """A team's channel (``channel``): id ``19:...@thread.tacv2``; ``name`` and ``team`` are
    kept under ``channelData`` in its activities."""
    return {
        "id": f"19:{secrets.token_hex(8)}@thread.tacv2",
        "conversationType": "channel",
        "isGroup": True,
        "tenantId": tenant,
        "name": name,
        "team": team,
    }


def mention(account: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The markup ``<at>Name</at>`` to put in a text and its ``mention`` entity."""
    markup = f"<at>{account['name']}</at>"
    entity = {
        "type": "mention",
        "text": markup,
        "mentioned": {"id": account["id"], "name": account["name"]},
    }
    return markup, entity
