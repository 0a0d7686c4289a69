"""The Zulip gateway's options: defaults, forms of site, email and API key, and the API key
kept out of reprs and error messages; the registry and a YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config import load_config
from gateways.base import GatewayError
from gateways.chat import ChatGatewayOptions
from gateways.daemon.registry import resolve_gateway
from gateways.zulip import ZulipGateway, ZulipGatewayOptions

KEY = "hiddenAPIkey0123"
BASE: dict[str, Any] = {
    "site": "https://chat.example/",
    "email": "bot@chat.example",
    "api_key": KEY,
}


def test_defaults() -> None:
    options = ZulipGatewayOptions(**BASE)
    assert options.site == "https://chat.example"
    assert options.state_path is None
    assert options.default_topic == "general"
    assert options.catch_up == 1000
    assert options.conversation_key == "thread"
    assert (options.poll_timeout, options.api_timeout) == (90.0, 15.0)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({**BASE, "site": "ftp://x"}, "site"),
        ({**BASE, "email": "no-at-sign"}, "email"),
        ({**BASE, "api_key": "hidden key!"}, "api_key must be"),
        ({**BASE, "api_key": ""}, "api_key must be"),
        ({**BASE, "catch_up": -1}, "catch_up"),
        ({**BASE, "default_topic": ""}, "default_topic"),
        ({**BASE, "api_kee": "hidden"}, "api_kee"),
    ],
)
def test_bad_options_are_refused_without_showing_secrets(
    values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        ZulipGatewayOptions(**values)
    assert problem in str(caught.value)
    assert "hidden" not in str(caught.value)


def test_the_api_key_is_not_in_the_repr() -> None:
    options = ZulipGatewayOptions(**BASE)
    assert KEY not in repr(options) + str(options)


def test_registry_and_a_yaml_file(tmp_path: Path) -> None:
    assert resolve_gateway("zulip") is ZulipGateway
    assert ZulipGateway.platform == "zulip"
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: app:application\n"
        "gateways:\n"
        "  zulip:\n"
        "    type: zulip\n"
        "    site: https://chat.example\n"
        "    email: bot@chat.example\n"
        f"    api_key: {KEY}\n"
        "    state_path: state.json\n"
    )
    loaded = load_config(config)
    assert loaded.gateways["zulip"].type == "zulip"


def test_other_options_are_refused(recording_app: Any) -> None:
    with pytest.raises(GatewayError, match="ZulipGatewayOptions"):
        ZulipGateway("zulip", recording_app(), ChatGatewayOptions())  # type: ignore[arg-type]
