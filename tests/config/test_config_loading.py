"""Loading gateway.yaml: a valid file, and every kind of mistake with its key path and line."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from config import (
    Config,
    ConfigError,
    GatewayConfig,
    LayerConfig,
    LoggingConfig,
    format_path,
    load_config,
    load_config_text,
)

# The example of the README, line for line (line numbers are asserted below).
EXAMPLE = """\
application: examples.echo.app:application   # import path of the ASGI application
layer:
  type: memory            # short name, or an import path
  options: {capacity: 100, expiry: 60}
gateways:                 # named gateways, each with a `type` and that type's options
  devices:
    type: mqtt
    broker: ${MQTT_URL:-embedded}
    password: ${MQTT_PASSWORD:-}
    subscriptions:
      - {topic: "devices/+/telemetry", qos: 1}
logging:
  level: INFO
  format: "%(asctime)s %(levelname)s %(name)s: %(message)s"
  loggers: {aiomqtt: WARNING}
shutdown_timeout: 10      # seconds to drain on SIGTERM
"""

MINIMAL = "application: app:application\ngateways:\n  devices:\n    type: mqtt\n"


def load_error(text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "gateway.yaml", environ=environ or {})
    return info.value


def test_example_file_loads_with_every_value(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")

    config = load_config(path, environ={"MQTT_URL": "mqtt://broker.local:1883"})

    assert config.application == "examples.echo.app:application"
    assert config.layer == LayerConfig(type="memory", options={"capacity": 100, "expiry": 60})
    assert list(config.gateways) == ["devices"]
    devices = config.gateways["devices"]
    assert devices.type == "mqtt"
    assert devices.options == {
        "broker": "mqtt://broker.local:1883",
        "password": "",
        "subscriptions": [{"topic": "devices/+/telemetry", "qos": 1}],
    }
    assert config.logging == LoggingConfig(
        level="INFO",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        loggers={"aiomqtt": "WARNING"},
    )
    assert config.shutdown_timeout == 10.0
    assert config.file == str(path)
    assert config.line_of(("gateways", "devices", "subscriptions", 0)) == 11


def test_values_are_plain_python_types() -> None:
    config = load_config_text(EXAMPLE, environ={})
    options = config.gateways["devices"].options
    # ruamel's round-trip types (CommentedMap, ScalarInt...) do not leak out.
    assert type(options["subscriptions"]) is list
    assert type(options["subscriptions"][0]) is dict
    assert type(options["subscriptions"][0]["qos"]) is int
    assert type(config.layer.options["capacity"]) is int


def test_model_dump_validates_back_to_the_same_config() -> None:
    config = load_config_text(EXAMPLE, environ={})
    dumped = config.model_dump()
    assert dumped["gateways"]["devices"]["broker"] == "embedded"  # options stay flat
    assert Config.model_validate(dumped) == config


def test_defaults_of_a_minimal_file() -> None:
    config = load_config_text(MINIMAL, environ={})
    assert config.layer == LayerConfig()
    assert config.layer.type == "memory"
    assert config.logging.level == "INFO"
    assert config.shutdown_timeout == 10.0
    assert config.gateways == {"devices": GatewayConfig(type="mqtt")}


def test_level_names_are_case_insensitive() -> None:
    config = load_config_text(
        MINIMAL + "logging:\n  level: debug\n  loggers: {aiomqtt.client: Warning}\n", environ={}
    )
    assert config.logging.level == "DEBUG"
    assert config.logging.loggers == {"aiomqtt.client": "WARNING"}


def test_anchors_and_merge_keys_are_resolved() -> None:
    text = """\
application: app:application
gateways:
  a: &common
    type: mqtt
    broker: mqtt://one
  b:
    <<: *common
    broker: mqtt://two
"""
    config = load_config_text(text, environ={})
    assert config.gateways["b"].type == "mqtt"
    assert config.gateways["b"].options == {"broker": "mqtt://two"}


def test_unknown_top_level_key() -> None:
    error = load_error(MINIMAL + "shutdown_timout: 5\n")
    assert error.path == ("shutdown_timout",)
    assert error.line == 5
    assert str(error) == (
        "gateway.yaml:5: shutdown_timout: unknown key 'shutdown_timout'; allowed keys: "
        "access, application, cluster, gateways, layer, lifespan, logging, monitoring, "
        "shutdown_timeout, state, workers"
    )


def test_unknown_nested_key() -> None:
    error = load_error(MINIMAL + "logging:\n  level: INFO\n  colour: red\n")
    assert error.path == ("logging", "colour")
    assert error.line == 7
    assert "unknown key 'colour'; allowed keys: format, level, loggers" in str(error)


def test_wrong_type_quotes_the_value() -> None:
    error = load_error(MINIMAL + "shutdown_timeout: soon\n")
    assert error.path == ("shutdown_timeout",)
    assert error.line == 5
    assert str(error).startswith("gateway.yaml:5: shutdown_timeout: ")
    assert "'soon'" in str(error)


def test_out_of_range_value_quotes_it() -> None:
    error = load_error(MINIMAL + "shutdown_timeout: 0\n")
    assert (error.path, error.line) == (("shutdown_timeout",), 5)
    assert str(error).endswith("greater than 0; got 0")


def test_bad_logging_level_in_a_logger_mapping() -> None:
    error = load_error(MINIMAL + "logging:\n  loggers:\n    aiomqtt.client: LOUD\n")
    assert error.path == ("logging", "loggers", "aiomqtt.client")
    assert error.line == 7
    assert str(error).startswith('gateway.yaml:7: logging.loggers["aiomqtt.client"]: ')
    assert "got 'LOUD'" in str(error)


def test_missing_required_top_level_key_points_at_the_document() -> None:
    error = load_error("# comment\ngateways:\n  devices: {type: mqtt}\n")
    assert error.path == ("application",)
    assert error.line == 2
    assert str(error) == "gateway.yaml:2: application: required key is missing"


def test_missing_gateway_type_points_at_the_gateway() -> None:
    error = load_error("application: app:application\ngateways:\n  devices:\n    broker: x\n")
    assert error.path == ("gateways", "devices", "type")
    assert error.line == 3


def test_at_least_one_gateway() -> None:
    error = load_error("application: app:application\ngateways: {}\n")
    assert (error.path, error.line) == (("gateways",), 2)
    assert "at least one gateway is required" in str(error)


def test_malformed_application_path() -> None:
    error = load_error("application: just_a_name\ngateways: {d: {type: mqtt}}\n")
    assert (error.path, error.line) == (("application",), 1)
    assert "'just_a_name'" in str(error)


def test_several_problems_are_all_listed_one_per_line_in_file_order() -> None:
    text = """\
application: app:application
gateways:
  devices: {type: mqtt}
logging:
  level: LOUD
  colour: red
shutdown_timeout: -1
"""
    error = load_error(text)
    assert [(e.path, e.line) for e in error.errors] == [
        (("logging", "level"), 5),
        (("logging", "colour"), 6),
        (("shutdown_timeout",), 7),
    ]
    lines = str(error).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("gateway.yaml:5: logging.level: ")
    assert lines[1].startswith("gateway.yaml:6: logging.colour: ")
    assert lines[2].startswith("gateway.yaml:7: shutdown_timeout: ")
    assert (error.path, error.line, error.file) == (("logging", "level"), 5, "gateway.yaml")


def test_duplicate_key_names_its_path_and_both_lines() -> None:
    text = """\
application: app:application
gateways:
  devices:
    type: mqtt
    broker: a
    broker: b
"""
    error = load_error(text)
    assert error.path == ("gateways", "devices", "broker")
    assert error.line == 6
    assert str(error) == (
        "gateway.yaml:6: gateways.devices.broker: duplicate key 'broker' (first on line 5)"
    )


def test_duplicate_key_at_the_top() -> None:
    error = load_error(MINIMAL + "application: other:app\n")
    assert (error.path, error.line) == (("application",), 5)


@pytest.mark.parametrize(
    ("text", "line", "found"),
    [
        ("- application: app:application\n", 1, "found a list"),
        ("# just a comment\n\njust a string\n", 3, "found a string 'just a string'"),
        ("42\n", 1, "found the value 42"),
    ],
)
def test_document_that_is_not_a_mapping(text: str, line: int, found: str) -> None:
    error = load_error(text)
    assert error.line == line
    assert error.path == ()
    assert str(error) == (
        f"gateway.yaml:{line}: the document must be a mapping with at least 'application' "
        f"and 'gateways', {found}"
    )


def test_empty_document() -> None:
    error = load_error("# nothing here\n")
    assert error.line is None
    assert str(error).startswith("gateway.yaml: the document must be a mapping")
    assert str(error).endswith("found nothing")


def test_yaml_syntax_error_has_its_line() -> None:
    error = load_error(MINIMAL + "logging:\n  level: INFO\n   format: x: y\n")
    assert error.line == 7
    assert error.path == ()
    assert str(error).startswith("gateway.yaml:7: invalid YAML: ")


def test_unclosed_flow_mapping_is_reported_with_a_line() -> None:
    error = load_error("application: app:application\ngateways: {devices: {type: mqtt}\n")
    assert error.line is not None
    assert "invalid YAML" in str(error)


def test_two_documents_are_an_error() -> None:
    error = load_error(MINIMAL + "---\n" + MINIMAL)
    assert error.line == 5
    assert "invalid YAML" in str(error)


def test_non_string_key_is_an_error() -> None:
    error = load_error(MINIMAL + "    1883: port\n")
    assert (error.path, error.line) == (("gateways", "devices"), 5)
    assert "keys must be strings, found 1883" in str(error)


def test_unknown_tag_is_an_error() -> None:
    error = load_error(MINIMAL + "    password: !env MQTT_PASSWORD\n")
    assert (error.path, error.line) == (("gateways", "devices", "password"), 5)
    assert "unsupported YAML tag '!env'" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}: cannot read the file: ")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(MINIMAL.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_format_path() -> None:
    assert format_path(()) == ""
    assert format_path(("gateways", "devices", "subscriptions", 0, "topic")) == (
        "gateways.devices.subscriptions[0].topic"
    )
    assert format_path(("logging", "loggers", "aiomqtt.client")) == (
        'logging.loggers["aiomqtt.client"]'
    )


def test_error_without_location_is_just_the_problem() -> None:
    assert str(ConfigError("something is wrong")) == "something is wrong"
    assert str(ConfigError("bad", path=("a", 0), line=3)) == "line 3: a[0]: bad"


def test_error_survives_pickling_with_its_location() -> None:
    error = load_error(MINIMAL + "logging: {level: LOUD, colour: red}\n")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert type(copy) is ConfigError
    assert str(copy) == str(error)
    assert [(e.path, e.line) for e in copy.errors] == [(e.path, e.line) for e in error.errors]


def test_error_at_locates_later_checks() -> None:
    config = load_config_text(MINIMAL, "gateway.yaml", environ={})
    error = config.error_at(("gateways", "devices", "type"), "unknown gateway type 'mqtt'")
    assert str(error) == "gateway.yaml:4: gateways.devices.type: unknown gateway type 'mqtt'"


def test_config_built_in_python_has_no_lines() -> None:
    config = Config.model_validate(
        {"application": "app:application", "gateways": {"d": {"type": "mqtt"}}}
    )
    assert config.line_of(("gateways", "d")) is None
    assert str(config.error_at(("gateways", "d"), "bad")) == "gateways.d: bad"
