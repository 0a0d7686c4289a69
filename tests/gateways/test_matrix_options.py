"""Options of the Matrix gateway (gateways/matrix/options.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config import ConfigError, load_config_text
from gateways.daemon.registry import resolve_gateway
from gateways.matrix import MatrixGateway, MatrixGatewayOptions
from gateways.matrix.options import default_store_path

BASE = {"homeserver": "https://matrix.example.org/", "user_id": "@bot:example.org"}


def test_defaults():
    options = MatrixGatewayOptions(**BASE, password="pw")
    assert options.homeserver == "https://matrix.example.org"
    assert options.auto_join is True
    assert options.e2e is False
    assert options.msgtype == "m.notice"
    assert options.sync_timeout == 30.0
    assert options.store_path is None
    assert options.conversation_key == "thread"
    rooms = MatrixGatewayOptions(**BASE, access_token="t", rooms=["!a:x.org", "!b", "#ops:x.org"])
    assert rooms.rooms == ["!a:x.org", "!b", "#ops:x.org"]


def test_the_default_store_is_per_gateway_and_user(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    path = default_store_path("matrix", "@bot:example.org")
    assert path == tmp_path / "asgi-gateway" / "matrix" / "matrix" / "@bot:example.org"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_store_path("m", "@b:x").parts[-5:] == (
        "state",
        "asgi-gateway",
        "matrix",
        "m",
        "@b:x",
    )
    assert Path.home() in default_store_path("m", "@b:x").parents


def test_secrets_stay_out_of_the_repr():
    shown = repr(MatrixGatewayOptions(**BASE, password="pw-s3cret"))
    assert "pw-s3cret" not in shown
    shown = repr(MatrixGatewayOptions(**BASE, access_token="tok-s3cret"))
    assert "tok-s3cret" not in shown


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"homeserver": "matrix.example.org"}, "is not an http:// or https:// URL"),
        ({"homeserver": "ftp://x.org"}, "is not an http:// or https:// URL"),
        ({"user_id": "bot"}, "'bot' is not a Matrix user id"),
        ({"user_id": "@bot"}, "'@bot' is not a Matrix user id"),
        ({"rooms": ["general"]}, "'general' is neither a room id"),
        ({"rooms": ["#general"]}, "'#general' is neither a room id"),
        ({"rooms": ["!a:x.org", "!a:x.org"]}, "each room may be listed once"),
        ({"access_token": "t"}, "give exactly one of password and access_token"),
        ({"password": None}, "give exactly one of password and access_token"),
        ({"sync_timeout": 0}, "greater than 0"),
        ({"msgtype": "m.image"}, "'m.notice' or 'm.text'"),
        ({"e2e": True}, "pip install 'matrix-nio[e2e]'"),
        ({"reconnect": {"initial": 5, "maximum": 1}}, "reconnect.maximum (1.0) is below"),
        ({"sync_token": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_options_are_refused_with_the_value(options, problem):
    settings = {**BASE, "password": "pw", **options}
    settings = {k: v for k, v in settings.items() if v is not None}
    with pytest.raises(ValidationError) as raised:
        MatrixGatewayOptions(**settings)
    assert problem in str(raised.value)
    assert "pw" not in str(raised.value).replace("password", "")


def test_a_bad_option_in_yaml_names_its_line():
    text = """\
application: app:application
gateways:
  chat:
    type: matrix
    homeserver: https://matrix.example.org
    user_id: bot
    password: s3cret
"""
    config = load_config_text(text, "gateway.yaml")
    with pytest.raises(ConfigError) as raised:
        config.validate_gateway_options("chat", MatrixGatewayOptions)
    message = str(raised.value)
    assert "line 6" in message or "gateway.yaml:6" in message
    assert "gateways.chat.user_id" in message
    assert "s3cret" not in message


def test_the_gateway_is_built_in_as_matrix():
    assert resolve_gateway("matrix") is MatrixGateway
    assert MatrixGateway.options_model is MatrixGatewayOptions
    assert MatrixGateway.platform == "matrix"
