"""Options of the XMPP gateway (gateways/xmpp/options.py), alone and in a YAML file."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config import ConfigError, load_config_text
from gateways.daemon.registry import resolve_gateway
from gateways.xmpp import XmppGateway, XmppGatewayOptions

REQUIRED = {"jid": "bot@example.org", "password": "s3cret"}


def test_defaults_and_room_forms():
    options = XmppGatewayOptions(
        **REQUIRED,
        rooms=["ops@conference.example.org", {"jid": "Home@Conference.Example.org", "nick": "t"}],
    )
    assert options.tls.mode == "starttls"
    assert options.tls.verify is True
    assert options.host is None
    assert options.effective_port is None  # DNS SRV
    assert options.resource == "asgi-gateway"
    assert options.bot_nick == "bot"
    assert [r.jid for r in options.rooms] == [
        "ops@conference.example.org",
        "home@conference.example.org",  # RFC 7622 normalisation
    ]
    assert options.nick_in(options.rooms[0]) == "bot"
    assert options.nick_in(options.rooms[1]) == "t"
    assert options.ping_interval == 60.0
    assert XmppGatewayOptions(**REQUIRED, host="xmpp.example.org").effective_port == 5222
    direct = XmppGatewayOptions(**REQUIRED, host="xmpp.example.org", tls={"mode": "direct"})
    assert direct.effective_port == 5223


def test_secrets_stay_out_of_the_repr_and_the_errors():
    options = XmppGatewayOptions(
        jid="bot@example.org",
        password="acct-s3cret",
        rooms=[{"jid": "ops@conference.example.org", "password": "room-s3cret"}],
    )
    shown = repr(options)
    assert "acct-s3cret" not in shown
    assert "room-s3cret" not in shown
    with pytest.raises(ValidationError) as raised:
        XmppGatewayOptions(jid="bot@example.org", password="acct-s3cret", port="x")
    assert "acct-s3cret" not in str(raised.value)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"jid": "not a jid@@"}, "is not a valid JID"),
        ({"jid": "bot@example.org/phone"}, "has a resource ('phone'); give the bare JID"),
        ({"jid": "example.org"}, "has no local part"),
        ({"port": 5222}, "port 5222 is set without host"),
        ({"host": "x", "port": 70000}, "less than or equal to 65535"),
        ({"rooms": ["conference.example.org"]}, "has no local part"),
        ({"rooms": ["a@b.org", "A@b.org"]}, "room 'a@b.org' is listed twice"),
        ({"rooms": [{"jid": "a@b.org", "nck": "x"}]}, "nck"),
        ({"tls": {"mode": "none"}}, "'starttls' or 'direct'"),
        ({"reconnect": {"initial": 5, "maximum": 1}}, "reconnect.maximum (1.0) is below"),
        ({"connect_timeout": 0}, "greater than 0"),
        ({"nick": ""}, "at least 1 character"),
        ({"resource": "a\x00b"}, "is not a valid JID resource"),
    ],
)
def test_invalid_options_are_refused_with_the_value(options, problem):
    with pytest.raises(ValidationError) as raised:
        XmppGatewayOptions(**{**REQUIRED, **options})
    assert problem in str(raised.value)


def test_a_bad_option_in_yaml_is_reported_at_its_line():
    text = (
        "application: app:application\n"
        "gateways:\n"
        "  chat:\n"
        "    type: xmpp\n"
        "    jid: bot@example.org/phone\n"
        "    password: s3cret\n"
        "    rooms:\n"
        "      - ops@conference.example.org\n"
        "      - {jid: conference.example.org}\n"
        "    tls: {mode: sometimes}\n"
    )
    config = load_config_text(text, "gateway.yaml", environ={})
    with pytest.raises(ConfigError) as info:
        config.validate_gateway_options("chat", XmppGatewayOptions)
    problems = {e.path: e.line for e in info.value.errors}
    assert problems[("gateways", "chat", "jid")] == 5
    assert problems[("gateways", "chat", "rooms", 1, "jid")] == 9
    assert problems[("gateways", "chat", "tls", "mode")] == 10
    assert "gateway.yaml:5: gateways.chat.jid: " in str(info.value)
    assert "s3cret" not in str(info.value)


def test_the_gateway_is_built_in_as_xmpp():
    assert resolve_gateway("xmpp") is XmppGateway
    assert XmppGateway.options_model is XmppGatewayOptions
    assert XmppGateway.platform == "xmpp"
