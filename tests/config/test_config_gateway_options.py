"""Second-step validation of a gateway's options by the gateway type's own model."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from config import ConfigError, OptionsModel, load_config_text

TEXT = """\
application: app:application
gateways:
  devices:
    type: mqtt
    broker: mqtt://broker.local
    port: ${PORT:-1883}
    keepalive: soon
    subscriptions:
      - topic: devices/+/telemetry
        qos: 1
      - topic: devices/+/status
        qos: 3
        retain: yes
  console:
    type: console
"""


class Subscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str
    qos: Literal[0, 1, 2] = 0


class MqttOptions(OptionsModel):
    broker: str
    port: int = 1883
    keepalive: float = Field(default=60.0, gt=0)
    password: SecretStr | None = None
    subscriptions: list[Subscription] = Field(default_factory=list)


class ConsoleOptions(OptionsModel):
    prompt: str = "> "


def test_valid_options() -> None:
    config = load_config_text(
        TEXT.replace("keepalive: soon", "keepalive: 30")
        .replace("qos: 3", "qos: 2")
        .replace("        retain: yes\n", ""),
        environ={},
    )
    options = config.validate_gateway_options("devices", MqttOptions)
    assert options.broker == "mqtt://broker.local"
    assert options.port == 1883
    assert options.keepalive == 30.0
    assert options.subscriptions[1] == Subscription(topic="devices/+/status", qos=2)
    assert config.validate_gateway_options("console", ConsoleOptions) == ConsoleOptions()


def test_each_bad_option_is_reported_at_its_key() -> None:
    config = load_config_text(TEXT, "gateway.yaml", environ={})  # the first step accepts it
    with pytest.raises(ConfigError) as info:
        config.validate_gateway_options("devices", MqttOptions)
    problems = {e.path: e for e in info.value.errors}
    assert set(problems) == {
        ("gateways", "devices", "keepalive"),
        ("gateways", "devices", "subscriptions", 1, "qos"),
        ("gateways", "devices", "subscriptions", 1, "retain"),
    }
    assert problems[("gateways", "devices", "keepalive")].line == 7
    assert problems[("gateways", "devices", "subscriptions", 1, "qos")].line == 12
    assert problems[("gateways", "devices", "subscriptions", 1, "retain")].line == 13
    message = str(info.value)
    assert "gateway.yaml:7: gateways.devices.keepalive: " in message
    assert "got 'soon'" in message
    assert "gateway.yaml:12: gateways.devices.subscriptions[1].qos: " in message
    assert "got 3" in message
    assert (
        "gateway.yaml:13: gateways.devices.subscriptions[1].retain: unknown key 'retain'; "
        "allowed keys: qos, topic"
    ) in message


def test_missing_required_option_points_at_the_gateway() -> None:
    config = load_config_text(TEXT, "gateway.yaml", environ={})
    with pytest.raises(ConfigError) as info:
        config.validate_gateway_options("console", MqttOptions)
    assert info.value.path == ("gateways", "console", "broker")
    assert info.value.line == 14
    assert str(info.value) == "gateway.yaml:14: gateways.console.broker: required key is missing"


def test_unknown_option_lists_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(
            TEXT.replace("type: console", "type: console\n    promt: '$ '"),
            "gateway.yaml",
            environ={},
        ).validate_gateway_options("console", ConsoleOptions)
    assert info.value.path == ("gateways", "console", "promt")
    assert info.value.line == 16
    assert str(info.value) == (
        "gateway.yaml:16: gateways.console.promt: unknown key 'promt'; allowed keys: prompt"
    )


def test_interpolated_value_that_does_not_coerce() -> None:
    config = load_config_text(TEXT, "gateway.yaml", environ={"PORT": "eighty"})
    with pytest.raises(ConfigError) as info:
        config.validate_gateway_options("devices", MqttOptions)
    port = next(e for e in info.value.errors if e.path[-1] == "port")
    assert port.line == 6
    assert "got 'eighty'" in str(port)


def test_aliases_are_the_keys_of_the_file() -> None:
    class Aliased(BaseModel):
        model_config = ConfigDict(extra="forbid")
        client_id: int = Field(alias="client-id")

    config = load_config_text(
        "application: app:application\ngateways:\n  g:\n    type: x\n    client-id: abc\n",
        "gateway.yaml",
        environ={},
    )
    with pytest.raises(ConfigError) as info:
        config.validate_gateway_options("g", Aliased)
    assert (info.value.path, info.value.line) == (("gateways", "g", "client-id"), 5)


def test_unknown_gateway_name() -> None:
    config = load_config_text(TEXT, "gateway.yaml", environ={})
    with pytest.raises(ConfigError, match="no gateway named 'sensors'; gateways: devices, console"):
        config.validate_gateway_options("sensors", ConsoleOptions)
