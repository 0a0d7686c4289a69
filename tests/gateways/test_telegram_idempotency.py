"""The Telegram gateway's ``idempotency_key`` s (``docs/specs/chat.md``): ``telegram:`` and
the ``update_id`` of the update each event is made of, against TelegramTestServer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateways.telegram import TelegramGateway, TelegramGatewayOptions
from gateways.testing.telegram import TelegramTestServer

pytestmark = pytest.mark.timeout(60)

KEYBOARD = {"inline_keyboard": [[{"text": "Kitchen", "callback_data": "temp:kitchen"}]]}


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramTestServer]:
    async with TelegramTestServer.started() as server:
        yield server


def of_type(app: Any, kind: str) -> list[dict[str, Any]]:
    return [e for log in app.logs for e in log.events if e["type"] == kind]


async def test_each_event_carries_the_key_of_its_update(
    telegram: TelegramTestServer, recording_app: Any, run_gateway: Any
) -> None:
    async def menu(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message" and event["text"] == "menu":
            await log.send(
                {"type": "chat.send", "text": "Which room?", "native": {"reply_markup": KEYBOARD}}
            )

    alice = telegram.add_user(5001, "Alice")
    app = recording_app(menu)
    options = TelegramGatewayOptions(
        token=telegram.token, api_url=telegram.api_url, poll_timeout=1, api_timeout=5
    )
    await run_gateway(TelegramGateway("telegram", app, options))
    said = telegram.post_message(alice, alice, "menu")
    command = telegram.post_message(alice, alice, "/temp kitchen")
    sent = await telegram.wait_for_sent()
    edited = telegram.edit_message(said, "menu, edited")
    pressed = telegram.press_button(sent, "temp:kitchen", alice)
    await app.wait_for(lambda: bool(of_type(app, "chat.action")))

    first, edit = of_type(app, "chat.message")
    assert first["idempotency_key"] == f"telegram:{said['update_id']}"
    # An edit is an update of its own: the same message id, another key.
    assert edit["id"] == first["id"]
    assert edit["idempotency_key"] == f"telegram:{edited['update_id']}"
    [ran] = of_type(app, "chat.command")
    assert ran["idempotency_key"] == f"telegram:{command['update_id']}"
    [action] = of_type(app, "chat.action")
    assert action["idempotency_key"] == f"telegram:{pressed['update_id']}"
    keys = [e["idempotency_key"] for log in app.logs for e in log.events if "raw" in e]
    assert len(set(keys)) == len(keys) == 4
