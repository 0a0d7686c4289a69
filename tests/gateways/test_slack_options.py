"""The Slack gateway's options: what each mode needs, token forms, and secrets kept out of
reprs and error messages."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateways.base import GatewayError
from gateways.daemon.registry import resolve_gateway
from gateways.slack import SlackGateway
from gateways.slack.options import SlackGatewayOptions

BOT = "xoxb-1-hidden-bot"
APP = "xapp-1-hidden-app"


def test_socket_mode_is_the_default_and_needs_an_app_token() -> None:
    options = SlackGatewayOptions(bot_token=BOT, app_token=APP)
    assert options.mode == "socket"
    assert options.conversation_key == "thread"
    assert options.base_url == "https://slack.com/api/"
    with pytest.raises(ValidationError, match="app_token"):
        SlackGatewayOptions(bot_token=BOT)


def test_http_mode_needs_a_signing_secret() -> None:
    with pytest.raises(ValidationError, match="signing_secret"):
        SlackGatewayOptions(mode="http", bot_token=BOT)
    options = SlackGatewayOptions(mode="http", bot_token=BOT, signing_secret="s3cr3t")
    assert (options.host, options.port, options.path) == ("127.0.0.1", 3000, "/slack/events")


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"bot_token": "xapp-1-hidden-bot", "app_token": APP}, "bot_token must be"),
        ({"bot_token": BOT, "app_token": "xoxb-1-hidden-app"}, "app_token must be"),
        ({"bot_token": BOT, "app_token": APP, "path": "events"}, "must start with '/'"),
        ({"bot_token": BOT, "app_token": APP, "base_url": "ftp://x/"}, "base_url"),
        ({"bot_token": BOT, "app_token": APP, "mode": "rtm"}, "mode"),
        ({"bot_token": BOT, "app_token": APP, "tokn": "x"}, "tokn"),
    ],
)
def test_bad_options_are_refused_without_showing_secrets(
    values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        SlackGatewayOptions(**values)
    assert problem in str(caught.value)
    assert "hidden" not in str(caught.value)


def test_secrets_are_not_in_the_repr() -> None:
    options = SlackGatewayOptions(bot_token=BOT, app_token=APP, signing_secret="s3cr3t")
    shown = repr(options) + str(options)
    assert "hidden" not in shown
    assert "s3cr3t" not in shown


def test_base_url_gets_its_trailing_slash() -> None:
    options = SlackGatewayOptions(bot_token=BOT, app_token=APP, base_url="http://proxy:8080/api")
    assert options.base_url == "http://proxy:8080/api/"


def test_registry_and_options_model() -> None:
    assert resolve_gateway("slack") is SlackGateway
    assert SlackGateway.options_model is SlackGatewayOptions
    assert SlackGateway.platform == "slack"


def test_other_options_are_refused(recording_app: Any) -> None:
    from gateways.chat import ChatGatewayOptions

    with pytest.raises(GatewayError, match="SlackGatewayOptions"):
        SlackGateway("slack", recording_app(), ChatGatewayOptions())  # type: ignore[arg-type]
