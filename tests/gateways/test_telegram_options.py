"""The Telegram gateway's options: defaults, what webhook mode needs, token and secret forms,
and secrets kept out of reprs and error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config import load_config
from gateways.base import GatewayError
from gateways.chat import ChatGatewayOptions
from gateways.daemon.registry import resolve_gateway
from gateways.telegram import TelegramGateway, TelegramGatewayOptions

TOKEN = "123456:hidden-TOKEN"


def test_polling_is_the_default() -> None:
    options = TelegramGatewayOptions(token=TOKEN)
    assert options.mode == "polling"
    assert options.api_url == "https://api.telegram.org"
    assert options.allowed_updates == ("message", "edited_message", "callback_query")
    assert options.state_path is None
    assert options.conversation_key == "thread"


def test_webhook_mode_needs_a_url_and_a_secret_token() -> None:
    with pytest.raises(ValidationError, match=r"url .* and secret_token"):
        TelegramGatewayOptions(token=TOKEN, mode="webhook", url="https://bot.example/tg")
    options = TelegramGatewayOptions(
        token=TOKEN, mode="webhook", url="https://bot.example/tg/hook", secret_token="s3cr3t-x"
    )
    assert (options.listen, options.port, options.webhook_path) == (
        "127.0.0.1",
        8443,
        "/tg/hook",
    )


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"token": "hidden-no-colon"}, "token must be a bot token"),
        ({"token": TOKEN, "secret_token": "hidden secret!"}, "secret_token must be"),
        ({"token": TOKEN, "api_url": "ftp://x"}, "api_url"),
        ({"token": TOKEN, "allowed_updates": ["chat_member"]}, "allowed_updates"),
        ({"token": TOKEN, "allowed_updates": []}, "at least one"),
        ({"token": TOKEN, "mode": "push"}, "mode"),
        ({"token": TOKEN, "path": "hook"}, "must start with '/'"),
        ({"token": TOKEN, "tokn": "x"}, "tokn"),
    ],
)
def test_bad_options_are_refused_without_showing_secrets(
    values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        TelegramGatewayOptions(**values)
    assert problem in str(caught.value)
    assert "hidden" not in str(caught.value)


def test_secrets_are_not_in_the_repr() -> None:
    options = TelegramGatewayOptions(
        token=TOKEN, mode="webhook", url="https://x.example/", secret_token="hidden-secret"
    )
    shown = repr(options) + str(options)
    assert "hidden" not in shown


def test_registry_and_a_yaml_file(tmp_path: Path) -> None:
    assert resolve_gateway("telegram") is TelegramGateway
    assert TelegramGateway.platform == "telegram"
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: app:application\n"
        "gateways:\n"
        "  telegram:\n"
        "    type: telegram\n"
        f"    token: '{TOKEN}'\n"
        "    state_path: state.json\n"
        "    allowed_updates: [message]\n"
    )
    loaded = load_config(config)
    assert loaded.gateways["telegram"].type == "telegram"


def test_other_options_are_refused(recording_app: Any) -> None:
    with pytest.raises(GatewayError, match="TelegramGatewayOptions"):
        TelegramGateway("telegram", recording_app(), ChatGatewayOptions())  # type: ignore[arg-type]
