"""The Rocket.Chat gateway's options: the server URL and the URLs made of it, ids, room
filters from YAML, and the token kept out of reprs and error messages."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config import load_config_text
from gateways.daemon.registry import resolve_gateway
from gateways.rocketchat import RocketChatGateway, RocketChatGatewayOptions

TOKEN = "hidden-pat-9L0Zx3vTqYbW2sKcR1mNdA"
USER = "CkCPNcvsTzPs2Wr7o"


def test_defaults_and_the_urls_made_of_the_server_url() -> None:
    options = RocketChatGatewayOptions(
        server_url="https://chat.example.org/", user_id=USER, token=TOKEN
    )
    assert options.server_url == "https://chat.example.org"
    assert options.api_url == "https://chat.example.org/api/v1"
    assert options.websocket_url == "wss://chat.example.org/websocket"
    assert (options.rooms, options.bots, options.state_path) == ((), False, None)
    assert options.conversation_key == "thread"
    plain = RocketChatGatewayOptions(server_url="http://127.0.0.1:3000", user_id=USER, token=TOKEN)
    assert plain.websocket_url == "ws://127.0.0.1:3000/websocket"


def test_one_room_may_be_given_alone() -> None:
    options = RocketChatGatewayOptions(
        server_url="http://x", user_id=USER, token=TOKEN, rooms="GENERAL"
    )
    assert options.rooms == ("GENERAL",)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"server_url": "ftp://x"}, "must be an http:// or https:// URL"),
        ({"server_url": "http://x/?a=1"}, "no query"),
        ({"user_id": "alice smith"}, "is not a Rocket.Chat user id"),
        ({"token": "hidden short"}, "does not look like a Rocket.Chat personal access token"),
        ({"rooms": ["#general"]}, "is not a Rocket.Chat room id"),
        ({"password": "hidden-secret"}, "password"),
        ({"reconnect_delay": 0}, "reconnect_delay"),
        ({"send_retries": -1}, "send_retries"),
    ],
)
def test_bad_options_are_refused_without_showing_the_token(
    values: dict[str, Any], problem: str
) -> None:
    given = {"server_url": "http://127.0.0.1:3000", "user_id": USER, "token": TOKEN, **values}
    with pytest.raises(ValidationError) as caught:
        RocketChatGatewayOptions(**given)
    assert problem in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert "hidden" not in str(caught.value)


def test_the_token_is_not_in_the_repr() -> None:
    options = RocketChatGatewayOptions(server_url="http://x", user_id=USER, token=TOKEN)
    assert TOKEN not in repr(options) + str(options)


def test_type_rocketchat_resolves_and_loads_from_yaml() -> None:
    assert resolve_gateway("rocketchat") is RocketChatGateway
    config = load_config_text(
        "application: app:application\n"
        "gateways:\n"
        "  rocketchat:\n"
        "    type: rocketchat\n"
        "    server_url: https://chat.example.org\n"
        f"    user_id: {USER}\n"
        f"    token: {TOKEN}\n"
        "    rooms: [GENERAL]\n"
        "    state_path: rocketchat-state.json\n",
        "gateway.yaml",
    )
    entry = config.gateways["rocketchat"]
    options = RocketChatGateway.options_model.model_validate(entry.options)
    assert isinstance(options, RocketChatGatewayOptions)
    assert options.rooms == ("GENERAL",)
    assert str(options.state_path) == "rocketchat-state.json"
