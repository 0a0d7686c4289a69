"""The Mattermost gateway's options: defaults, URL, token and channel forms, and the token
kept out of reprs and error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config import load_config
from gateways.base import GatewayError
from gateways.chat import ChatGatewayOptions
from gateways.daemon.registry import resolve_gateway
from gateways.mattermost import MattermostGateway, MattermostGatewayOptions

TOKEN = "hiddentoken0123456789abcdx"
CHANNEL = "4xp9fdt77pncbef59f4k1qe83o"


def test_the_defaults() -> None:
    options = MattermostGatewayOptions(url="https://chat.example.com/", token=TOKEN)
    assert options.url == "https://chat.example.com"
    assert options.api_url == "https://chat.example.com/api/v4"
    assert options.websocket_url == "wss://chat.example.com/api/v4/websocket"
    assert options.channels == ()
    assert options.state_path is None
    assert options.bots is False
    assert options.conversation_key == "thread"
    local = MattermostGatewayOptions(url="http://127.0.0.1:8065", token=TOKEN, channels=CHANNEL)
    assert local.websocket_url == "ws://127.0.0.1:8065/api/v4/websocket"
    assert local.channels == (CHANNEL,)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"token": "hidden-not-an-id"}, "does not look like a Mattermost access token"),
        ({"token": f"Bearer {TOKEN}"}, "without 'Bearer '"),
        ({"url": "ftp://chat.example.com"}, "must be an http:// or https:// URL"),
        ({"url": "https://chat.example.com/api/v4"}, "without /api/v4"),
        ({"channels": ["town-square"]}, "is not a Mattermost channel id"),
        ({"max_retries": -1}, "max_retries"),
        ({"tokn": "x"}, "tokn"),
    ],
)
def test_bad_options_are_refused_without_showing_the_token(
    values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        MattermostGatewayOptions(**{"url": "https://chat.example.com", "token": TOKEN, **values})
    assert problem in str(caught.value)
    assert "hidden" not in str(caught.value)


def test_the_token_is_not_in_the_repr() -> None:
    options = MattermostGatewayOptions(url="https://chat.example.com", token=TOKEN)
    assert TOKEN not in repr(options) + str(options)


def test_registry_and_a_yaml_file(tmp_path: Path) -> None:
    assert resolve_gateway("mattermost") is MattermostGateway
    assert MattermostGateway.platform == "mattermost"
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: app:application\n"
        "gateways:\n"
        "  mattermost:\n"
        "    type: mattermost\n"
        "    url: https://chat.example.com\n"
        f"    token: '{TOKEN}'\n"
        "    state_path: state.json\n"
        f"    channels: [{CHANNEL}]\n"
    )
    loaded = load_config(config)
    assert loaded.gateways["mattermost"].type == "mattermost"


def test_other_options_are_refused(recording_app: Any) -> None:
    with pytest.raises(GatewayError, match="MattermostGatewayOptions"):
        MattermostGateway("mattermost", recording_app(), ChatGatewayOptions())  # type: ignore[arg-type]


def test_the_asyncapi_server_names_the_host_and_no_secret(recording_app: Any) -> None:
    options = MattermostGatewayOptions(url="https://bot:pw@chat.example.com:8443/mm", token=TOKEN)
    server = MattermostGateway("mattermost", recording_app(), options).asyncapi_server()
    assert server is not None
    assert (server["host"], server["pathname"], server["protocol"]) == (
        "chat.example.com:8443",
        "/mm",
        "mattermost",
    )
    assert "pw" not in str(server)
    assert TOKEN not in str(server)
