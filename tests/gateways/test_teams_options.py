"""The Teams gateway's options: defaults (the Bot Framework's public cloud), GUIDs, URLs and
paths checked, the token endpoint per tenant, and the app password kept out of reprs and
error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config import load_config
from gateways.base import GatewayError
from gateways.chat import ChatGatewayOptions
from gateways.daemon.registry import resolve_gateway
from gateways.teams import TeamsGateway, TeamsGatewayOptions

APP = "00000000-0000-4000-8000-0000000000aa"
TENANT = "11111111-2222-4333-8444-555555555555"
SECRET = "hidden-Password~42"


def test_the_defaults_are_the_bot_frameworks() -> None:
    options = TeamsGatewayOptions(app_id=APP, app_password=SECRET)
    assert (options.listen, options.port, options.path) == ("127.0.0.1", 3978, "/api/messages")
    assert options.openid_metadata_url == (
        "https://login.botframework.com/v1/.well-known/openidconfiguration"
    )
    assert options.issuer == "https://api.botframework.com"
    assert options.token_endpoint == (
        "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"
    )
    assert options.token_scope == "https://api.botframework.com/.default"
    assert options.clock_skew == 300
    assert options.service_url is None
    assert options.conversation_key == "thread"


def test_a_single_tenant_app_gets_its_tokens_from_its_tenant() -> None:
    options = TeamsGatewayOptions(app_id=APP, app_password=SECRET, tenant_id=TENANT)
    assert options.token_endpoint == (
        f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    )
    given = TeamsGatewayOptions(app_id=APP, app_password=SECRET, token_url="https://t.example/x")
    assert given.token_endpoint == "https://t.example/x"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"app_id": "my-bot"}, "must be a GUID"),
        ({"tenant_id": "contoso"}, "must be a GUID"),
        ({"app_password": ""}, "must not be empty"),
        ({"path": "api/messages"}, "must start with '/'"),
        ({"service_url": "ftp://x"}, "http:// or https://"),
        ({"openid_metadata_url": "nowhere"}, "http:// or https://"),
        ({"activity_wait": 30}, "activity_wait"),
        ({"app_pasword": "x"}, "app_pasword"),
    ],
)
def test_bad_options_are_refused_without_showing_the_password(
    values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        TeamsGatewayOptions(**{"app_id": APP, "app_password": SECRET, **values})
    assert problem in str(caught.value)
    assert "hidden" not in str(caught.value)


def test_the_password_is_not_in_the_repr() -> None:
    options = TeamsGatewayOptions(app_id=APP, app_password=SECRET)
    assert "hidden" not in repr(options) + str(options)


def test_registry_and_a_yaml_file(tmp_path: Path) -> None:
    assert resolve_gateway("teams") is TeamsGateway
    assert TeamsGateway.platform == "teams"
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: app:application\n"
        "gateways:\n"
        "  teams:\n"
        "    type: teams\n"
        f"    app_id: '{APP}'\n"
        f"    app_password: '{SECRET}'\n"
        "    state_path: state.json\n"
    )
    loaded = load_config(config)
    assert loaded.gateways["teams"].type == "teams"


def test_other_options_are_refused(recording_app: Any) -> None:
    with pytest.raises(GatewayError, match="TeamsGatewayOptions"):
        TeamsGateway("teams", recording_app(), ChatGatewayOptions())  # type: ignore[arg-type]


def test_the_asyncapi_server_is_the_messaging_endpoint(recording_app: Any) -> None:
    options = TeamsGatewayOptions(app_id=APP, app_password=SECRET, port=8080)
    server = TeamsGateway("teams", recording_app(), options).asyncapi_server()
    assert server is not None
    assert (server["host"], server["pathname"], server["protocol"]) == (
        "127.0.0.1:8080",
        "/api/messages",
        "teams",
    )
    assert "hidden" not in str(server)
