"""The Telegram adapter (``type: telegram``): Telegram chats as chat scopes, on aiogram 3.

``TelegramGateway`` is the protocol server and ``TelegramGatewayOptions`` its YAML options
(``docs/telegram.md``). Inside: ``gateway`` (aiogram's ``Bot``, long polling or a webhook),
``inbound`` (updates to chat events), ``outbound`` (sending, 429 retries), ``ledger``
(which updates were handled: at least once, never twice) and ``options``. The wire test
server is ``gateways.testing.telegram.TelegramTestServer``.
"""

from __future__ import annotations

from gateways.telegram.gateway import TelegramGateway
from gateways.telegram.options import TelegramGatewayOptions

__all__ = ["TelegramGateway", "TelegramGatewayOptions"]
