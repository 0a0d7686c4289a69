"""The Discord gateway's options: token forms, intents by name, id filters from YAML, the
API URL, and the token kept out of reprs and error messages."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config import load_config_text
from gateways.daemon.registry import resolve_gateway
from gateways.discord import DiscordGateway, DiscordGatewayOptions
from gateways.discord.options import DEFAULT_INTENTS
from gateways.testing.discord.payloads import bot_token

TOKEN = bot_token("80351110224678912")


def test_defaults_ask_for_what_a_chatbot_needs() -> None:
    options = DiscordGatewayOptions(token=TOKEN)
    assert options.intents == DEFAULT_INTENTS
    assert options.intents_value == (1 << 0) | (1 << 9) | (1 << 10) | (1 << 12) | (1 << 13) | (
        1 << 15
    )
    assert options.api_url == "https://discord.com/api/v10"
    assert (options.guilds, options.channels, options.bots) == ((), (), False)
    assert options.conversation_key == "thread"


def test_intents_are_names_and_ids_may_be_yaml_integers() -> None:
    options = DiscordGatewayOptions(
        token=TOKEN,
        intents=["GUILDS", "guild_messages", "guilds"],
        guilds=[81384788765712384],
        channels=["81384788765712385"],
        api_url="http://127.0.0.1:9/api/v10/",
    )
    assert options.intents == ("guilds", "guild_messages")
    assert options.guilds == ("81384788765712384",)
    assert options.channels == ("81384788765712385",)
    assert options.api_url == "http://127.0.0.1:9/api/v10"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"token": f"Bot {TOKEN}"}, "without the 'Bot ' prefix"),
        ({"token": "hidden-not-a-token"}, "does not look like a Discord bot token"),
        ({"token": TOKEN, "intents": ["guild_mesages"]}, "unknown intents ['guild_mesages']"),
        ({"token": TOKEN, "guilds": ["general"]}, "is not a Discord id"),
        ({"token": TOKEN, "api_url": "ftp://x"}, "api_url"),
        ({"token": TOKEN, "gateway_url": "ws://x"}, "gateway_url"),
        ({"token": TOKEN, "max_rate_limit": 0}, "max_rate_limit"),
    ],
)
def test_bad_options_are_refused_without_showing_the_token(
    values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        DiscordGatewayOptions(**values)
    assert problem in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert "hidden" not in str(caught.value)


def test_the_token_is_not_in_the_repr() -> None:
    options = DiscordGatewayOptions(token=TOKEN)
    assert TOKEN not in repr(options) + str(options)


def test_type_discord_resolves_and_loads_from_yaml() -> None:
    assert resolve_gateway("discord") is DiscordGateway
    config = load_config_text(
        "application: app:application\n"
        "gateways:\n"
        "  discord:\n"
        "    type: discord\n"
        f"    token: {TOKEN}\n"
        "    channels: [81384788765712385]\n",
        "gateway.yaml",
    )
    entry = config.gateways["discord"]
    options = DiscordGateway.options_model.model_validate(entry.options)
    assert isinstance(options, DiscordGatewayOptions)
    assert options.channels == ("81384788765712385",)
