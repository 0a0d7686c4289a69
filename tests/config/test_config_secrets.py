"""Secrets from the environment never show in reprs or error messages."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from config import (
    SECRET_MASK,
    ConfigError,
    OptionsModel,
    is_secret_name,
    load_config_text,
    redact,
    redact_url,
)

PASSWORD = "s3cr3t-Hunter2"
URL_PASSWORD = "url-pa55word"

TEXT = """\
application: app:application
layer:
  type: redis
  options:
    hosts: ["redis://:${REDIS_PASSWORD}@redis.local:6379/0"]
gateways:
  devices:
    type: mqtt
    broker: ${MQTT_URL}
    username: device-gw
    password: ${MQTT_PASSWORD}
    api_token: ${MQTT_PASSWORD}
    keepalive: ${KEEPALIVE:-60}
"""

ENVIRON = {
    "MQTT_PASSWORD": PASSWORD,
    "MQTT_URL": f"mqtts://admin:{URL_PASSWORD}@broker.local:8883",
    "REDIS_PASSWORD": URL_PASSWORD,
}


class MqttOptions(OptionsModel):
    broker: str
    username: str
    password: SecretStr
    api_token: int  # a secret by its name, whatever its type
    keepalive: float


def assert_no_secret(text: str) -> None:
    assert PASSWORD not in text
    assert URL_PASSWORD not in text


def test_repr_and_str_of_the_config_hide_secrets() -> None:
    config = load_config_text(TEXT, environ=ENVIRON)
    for shown in (repr(config), str(config), repr(config.gateways), repr(config.layer)):
        assert_no_secret(shown)
    assert "username='device-gw'" in repr(config)
    assert "mqtts://admin:***@broker.local:8883" in repr(config)
    assert "redis://:***@redis.local:6379/0" in repr(config)
    assert f"password='{SECRET_MASK}'" in repr(config)
    # The values themselves are intact for the gateway to use.
    assert config.gateways["devices"].options["password"] == PASSWORD


def test_validated_options_hide_secrets() -> None:
    config = load_config_text(
        TEXT.replace("${MQTT_PASSWORD}\n    keep", "1\n    keep"), environ=ENVIRON
    )
    options = config.validate_gateway_options("devices", MqttOptions)
    assert options.password.get_secret_value() == PASSWORD
    assert options.broker == ENVIRON["MQTT_URL"]
    assert_no_secret(repr(options))
    assert_no_secret(str(options))


def test_error_about_a_neighbouring_key_does_not_show_secrets() -> None:
    config = load_config_text(TEXT, "gateway.yaml", environ={**ENVIRON, "KEEPALIVE": "soon"})
    with pytest.raises(ConfigError) as info:
        config.validate_gateway_options("devices", MqttOptions)
    keepalive = next(e for e in info.value.errors if e.path[-1] == "keepalive")
    assert keepalive.line == 13
    assert "got 'soon'" in str(keepalive)
    assert_no_secret(str(info.value))
    assert_no_secret(repr(info.value))


def test_error_about_a_secret_field_does_not_quote_it() -> None:
    config = load_config_text(TEXT, "gateway.yaml", environ=ENVIRON)
    with pytest.raises(ConfigError) as info:
        config.validate_gateway_options("devices", MqttOptions)
    # api_token holds the password, which is not an int: the error must not quote it.
    (error,) = info.value.errors
    assert (error.path, error.line) == (("gateways", "devices", "api_token"), 12)
    assert "value hidden" in str(error)
    assert_no_secret(str(error))


def test_error_about_a_secret_str_field_with_a_plain_name_does_not_quote_it() -> None:
    class Options(OptionsModel):
        credential: SecretStr  # "credential" is not a secret word: the type says it is

    config = load_config_text(
        "application: app:application\ngateways:\n  g:\n    type: x\n"
        "    credential: [s3cr3t-Hunter2]\n",
        "gateway.yaml",
        environ={},
    )
    with pytest.raises(ConfigError) as info:
        config.validate_gateway_options("g", Options)
    assert info.value.line == 5
    assert "value hidden" in str(info.value)
    assert_no_secret(str(info.value))


def test_first_step_errors_do_not_show_interpolated_urls() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(
            "application: ${MQTT_URL}\ngateways:\n  g: {type: mqtt}\n"
            "shutdown_timeout: ${MQTT_URL}\n",
            "gateway.yaml",
            environ=ENVIRON,
        )
    assert len(info.value.errors) == 2
    assert_no_secret(str(info.value))


def test_error_with_a_whole_mapping_as_input_masks_its_secrets() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(
            "application: app:application\ngateways:\n  g: {type: mqtt}\n"
            "logging: [{password: '${MQTT_PASSWORD}'}]\n",
            "gateway.yaml",
            environ=ENVIRON,
        )
    assert info.value.path == ("logging",)
    assert SECRET_MASK in str(info.value)
    assert_no_secret(str(info.value))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://user:pass@host:1883", "mqtt://user:***@host:1883"),
        ("redis://:pass@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("mqtts://user:p@ss@host/path?x=1", "mqtts://user:***@host/path?x=1"),
        ("amqp://user@host", "amqp://user@host"),
        ("mqtt://host:1883", "mqtt://host:1883"),
        ("http://host:8080/a@b", "http://host:8080/a@b"),
        ("embedded", "embedded"),
        ("from mqtt://a:b@h1 to redis://:c@h2", "from mqtt://a:***@h1 to redis://:***@h2"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("MQTT_PASSWORD", True),
        ("passwd", True),
        ("client_secret", True),
        ("bot_token", True),
        ("api_key", True),
        ("broker", False),
        ("username", False),
        ("keepalive", False),
        ("botToken", True),
        ("key", True),
        ("symmetric_encryption_keys", True),
        ("signing_secret", True),
        ("conversation_key", False),
        ("scope_key", False),
        ("monkey", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_redact_masks_nested_secret_keys_and_keeps_none() -> None:
    value = {"auth": {"token": "t", "user": "u"}, "password": None, "urls": ["mqtt://a:b@h"]}
    assert redact(value) == {
        "auth": {"token": SECRET_MASK, "user": "u"},
        "password": None,
        "urls": ["mqtt://a:***@h"],
    }


def test_validator_message_quoting_a_secret_is_masked() -> None:
    class Options(BaseModel):
        model_config = ConfigDict(extra="ignore")
        password: str

        @field_validator("password")
        @classmethod
        def _long_enough(cls, value: str) -> str:
            if len(value) < 20:
                raise ValueError(f"{value!r} is shorter than 20 characters")
            return value

    config = load_config_text(TEXT, "gateway.yaml", environ=ENVIRON)
    with pytest.raises(ConfigError) as info:
        config.validate_gateway_options("devices", Options)
    assert (info.value.path, info.value.line) == (("gateways", "devices", "password"), 11)
    assert "is shorter than 20 characters" in str(info.value)
    assert_no_secret(str(info.value))
