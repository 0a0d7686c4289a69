"""${VAR} interpolation: the forms, where it applies, and unset variables."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from config import ConfigError, InterpolationError, interpolate, load_config_text

HEAD = "application: app:application\ngateways:\n  devices:\n    type: mqtt\n"


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("${HOST}", {"HOST": "broker.local"}, "broker.local"),
        ("${HOST:-localhost}", {}, "localhost"),
        ("${HOST:-localhost}", {"HOST": "broker.local"}, "broker.local"),
        ("${HOST:-localhost}", {"HOST": ""}, "localhost"),  # as in the shell: empty -> default
        ("${PASSWORD:-}", {}, ""),
        ("${EMPTY}", {"EMPTY": ""}, ""),
        ("cost: $$5", {}, "cost: $5"),
        ("$${HOST}", {"HOST": "x"}, "${HOST}"),
        ("$$$${HOST}", {"HOST": "x"}, "$${HOST}"),
        ("$$${HOST}", {"HOST": "x"}, "$x"),
        (
            "mqtt://${USER}:${PASS}@${HOST:-localhost}:${PORT:-1883}",
            {"USER": "u", "PASS": "p"},
            "mqtt://u:p@localhost:1883",
        ),
        ("a lone $ and $HOME stay", {"HOME": "/root"}, "a lone $ and $HOME stay"),
        ("${URL:-mqtt://h:1883/x}", {}, "mqtt://h:1883/x"),
        ("no references", {}, "no references"),
    ],
)
def test_forms(text: str, environ: dict[str, str], expected: str) -> None:
    assert interpolate(text, environ) == expected


def test_value_of_a_variable_is_not_interpolated_again() -> None:
    assert interpolate("${A}", {"A": "${B}", "B": "no"}) == "${B}"


@pytest.mark.parametrize("text", ["${}", "${1X}", "${X:?required}", "${X", "${X-default}"])
def test_malformed_references(text: str) -> None:
    with pytest.raises(InterpolationError, match="invalid reference"):
        interpolate(text, {"X": "1"})


def test_unset_variable_names_the_variable() -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate("mqtt://${MQTT_HOST}", {})
    assert info.value.variable == "MQTT_HOST"
    assert "'MQTT_HOST' is not set" in str(info.value)


def test_interpolated_strings_stay_strings_until_a_model_coerces_them() -> None:
    config = load_config_text(
        HEAD + "    port: ${PORT:-1883}\n    tls: ${TLS:-true}\nshutdown_timeout: ${DRAIN:-2.5}\n",
        environ={"PORT": "8883"},
    )
    assert config.gateways["devices"].options == {"port": "8883", "tls": "true"}
    assert config.shutdown_timeout == 2.5  # a float field: "2.5" -> 2.5

    class Options(BaseModel):
        port: int
        tls: bool

    options = config.validate_gateway_options("devices", Options)
    assert options.port == 8883
    assert options.tls is True


def test_every_string_value_is_interpolated_at_any_depth() -> None:
    config = load_config_text(
        "application: ${APP}\n"
        "layer:\n  type: ${LAYER:-memory}\n  options: {hosts: ['${REDIS}']}\n"
        + HEAD.split("\n", 1)[1]
        + "    subscriptions:\n      - {topic: '${SITE}/+/telemetry', qos: 1}\n",
        environ={"APP": "mysite.asgi:application", "REDIS": "redis://r:6379", "SITE": "plant"},
    )
    assert config.application == "mysite.asgi:application"
    assert config.layer.type == "memory"
    assert config.layer.options == {"hosts": ["redis://r:6379"]}
    subscriptions = config.gateways["devices"].options["subscriptions"]
    assert subscriptions == [{"topic": "plant/+/telemetry", "qos": 1}]


def test_keys_and_non_strings_are_not_interpolated() -> None:
    config = load_config_text(HEAD + "    ${KEY}: 1\n    qos: 1\n", environ={"KEY": "x"})
    assert config.gateways["devices"].options == {"${KEY}": 1, "qos": 1}


def test_block_scalars_are_interpolated() -> None:
    config = load_config_text(
        HEAD + "    greeting: |\n      hello ${NAME}\n      bye\n", environ={"NAME": "ada"}
    )
    assert config.gateways["devices"].options["greeting"] == "hello ada\nbye\n"


def test_unset_variable_is_a_config_error_with_path_line_and_name() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(HEAD + "    broker: ${MQTT_URL}\n", "gateway.yaml", environ={})
    error = info.value
    assert error.path == ("gateways", "devices", "broker")
    assert error.line == 5
    assert str(error) == (
        "gateway.yaml:5: gateways.devices.broker: environment variable 'MQTT_URL' is not set "
        "(write ${MQTT_URL:-default} to give it a default)"
    )


def test_every_unset_variable_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(
            HEAD + "    broker: ${MQTT_URL}\n    subscriptions: ['${TOPIC}']\n",
            "gateway.yaml",
            environ={},
        )
    assert [(e.path, e.line) for e in info.value.errors] == [
        (("gateways", "devices", "broker"), 5),
        (("gateways", "devices", "subscriptions", 0), 6),
    ]
    assert len(str(info.value).splitlines()) == 2


def test_load_config_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASGI_GATEWAY_TEST_BROKER", "mqtt://from-env")
    config = load_config_text(HEAD + "    broker: ${ASGI_GATEWAY_TEST_BROKER}\n")
    assert config.gateways["devices"].options["broker"] == "mqtt://from-env"
