"""A local server speaking Telegram's Bot API (https://core.telegram.org/bots/api), for
tests of Telegram bots that cannot reach Telegram: ``TelegramTestServer``. aiogram runs
against it unchanged, pointed at ``server.api_url`` (``TelegramAPIServer.from_base``; the
Telegram gateway's ``api_url`` option). Payload builders are in ``payloads``.
"""

from __future__ import annotations

from gateways.testing.telegram.api import ApiCall, ApiError, SentMessage
from gateways.testing.telegram.payloads import entities_of, forum, group, private_chat, user
from gateways.testing.telegram.server import HttpAnswer, TelegramTestServer, WebhookDelivery

__all__ = [
    "ApiCall",
    "ApiError",
    "HttpAnswer",
    "SentMessage",
    "TelegramTestServer",
    "WebhookDelivery",
    "entities_of",
    "forum",
    "group",
    "private_chat",
    "user",
]
