"""Options of the IRC gateway (gateways/irc_options.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateways.daemon.registry import resolve_gateway
from gateways.irc import IrcGateway, IrcGatewayOptions


def test_defaults_and_channel_forms():
    options = IrcGatewayOptions(
        server="irc.example.org",
        nick="thermo",
        channels=["#home", {"name": "#ops", "key": "k3y"}],
    )
    assert options.effective_port == 6667
    assert options.conversation_key == "thread"
    assert [c.name for c in options.channels] == ["#home", "#ops"]
    assert options.channels[1].key is not None
    assert options.channels[1].key.get_secret_value() == "k3y"
    assert options.flood.burst == 5
    assert options.flood.rate == 1.0
    tls = IrcGatewayOptions(server="irc.example.org", nick="thermo", tls={})
    assert tls.effective_port == 6697
    assert tls.tls is not None
    assert tls.tls.verify is True


def test_secrets_stay_out_of_the_repr():
    options = IrcGatewayOptions(
        server="irc.example.org",
        nick="thermo",
        password="srv-s3cret",
        sasl={"username": "thermo", "password": "sasl-s3cret"},
        channels=[{"name": "#ops", "key": "chan-s3cret"}],
    )
    shown = repr(options)
    for secret in ("srv-s3cret", "sasl-s3cret", "chan-s3cret"):
        assert secret not in shown


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"nick": "9lives"}, "'9lives' is not a valid IRC nickname"),
        ({"nick": "bad nick"}, "'bad nick' is not a valid IRC nickname"),
        ({"alternative_nicks": ["ok", "no way"]}, "'no way' is not a valid IRC nickname"),
        ({"alternative_nicks": ["thermo"]}, "'thermo' is also in alternative_nicks"),
        ({"channels": ["home"]}, "'home' is not a valid IRC channel name"),
        ({"channels": ["#a,#b"]}, "'#a,#b' is not a valid IRC channel name"),
        ({"channels": ["#Home", "#home"]}, "'#home' is listed twice"),
        ({"reconnect": {"initial": 5, "maximum": 1}}, "reconnect.maximum (1.0) is below"),
        ({"encoding": "klingon"}, "encoding 'klingon' is not known"),
        ({"flood": {"burst": 0}}, "greater than or equal to 1"),
        ({"port": 70000}, "less than or equal to 65535"),
    ],
)
def test_invalid_options_are_refused_with_the_value(options, problem):
    settings = {"server": "irc.example.org", "nick": "thermo", **options}
    with pytest.raises(ValidationError) as raised:
        IrcGatewayOptions(**settings)
    assert problem in str(raised.value)


def test_the_gateway_is_built_in_as_irc():
    assert resolve_gateway("irc") is IrcGateway
    assert IrcGateway.options_model is IrcGatewayOptions
    assert IrcGateway.platform == "irc"
