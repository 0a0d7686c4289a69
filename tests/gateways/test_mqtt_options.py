"""MQTT gateway options: what YAML is accepted and what errors say (the topic rules they
share with routing and consumers are tested in tests/layer/test_layer_topics.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateways.mqtt import MqttGateway
from gateways.mqtt.options import MqttGatewayOptions, parse_broker


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("mqtt://broker.local", ("mqtt", "broker.local", 1883, None, None)),
        ("mqtt://10.0.0.1:1884", ("mqtt", "10.0.0.1", 1884, None, None)),
        ("mqtts://h", ("mqtts", "h", 8883, None, None)),
        ("mqtt://u%40x:p%3Aw@h:1", ("mqtt", "h", 1, "u@x", "p:w")),
        ("mqtt://user@h", ("mqtt", "h", 1883, "user", None)),
        ("embedded", ("embedded", "127.0.0.1", 1883, None, None)),
        ("embedded://0.0.0.0:2883", ("embedded", "0.0.0.0", 2883, None, None)),
    ],
)
def test_broker_urls(url, parsed):
    address = parse_broker(url)
    assert (address.scheme, address.host, address.port, address.username, address.password) == (
        parsed
    )


@pytest.mark.parametrize(
    "url",
    ["http://h", "mqtt://", "mqtt://h:port", "mqtt://h/path", "mqtt://h?x=1", "h:1883", ""],
)
def test_bad_broker_url_names_the_value(url):
    with pytest.raises(ValidationError, match="broker"):
        MqttGatewayOptions(broker=url)


def test_broker_password_is_hidden_in_errors_and_redacted():
    with pytest.raises(ValidationError) as info:
        MqttGatewayOptions(broker="mqtt://u:topsecret@h:bad")
    assert "topsecret" not in str(info.value)
    assert "mqtt://u:***@h:bad" in str(info.value)
    assert parse_broker("mqtt://u:topsecret@h").redacted() == "mqtt://u:***@h:1883"


def test_protocol_accepts_yaml_int_5():
    assert MqttGatewayOptions(broker="mqtt://h", protocol=5).protocol == "5"
    with pytest.raises(ValidationError):
        MqttGatewayOptions(broker="mqtt://h", protocol=4)


def test_embedded_broker_refuses_mqtt5():
    with pytest.raises(ValidationError, match=r"MQTT 3\.1\.1 only"):
        MqttGatewayOptions(broker="embedded", protocol="5")


def test_session_expiry_needs_mqtt5():
    with pytest.raises(ValidationError, match=r"session_expiry \(30\) needs protocol '5'"):
        MqttGatewayOptions(broker="mqtt://h", session_expiry=30)
    assert MqttGatewayOptions(broker="mqtt://h", protocol=5, session_expiry=30).session_expiry == 30


def test_tls_file_must_exist(tmp_path: Path):
    missing = tmp_path / "ca.pem"
    with pytest.raises(ValidationError, match=f"TLS file '{missing}' does not exist"):
        MqttGatewayOptions(broker="mqtts://h", tls={"ca_file": str(missing)})


def test_tls_key_needs_a_certificate(tmp_path: Path):
    key = tmp_path / "key.pem"
    key.write_text("not checked here")
    with pytest.raises(ValidationError, match=r"tls\.cert_file is not"):
        MqttGatewayOptions(broker="mqtts://h", tls={"key_file": str(key)})


def test_tls_needs_an_mqtts_broker(tmp_path: Path):
    with pytest.raises(ValidationError, match="is not mqtts://"):
        MqttGatewayOptions(broker="mqtt://h", tls={"insecure": True})


def test_unknown_option_and_frozen():
    with pytest.raises(ValidationError, match="brokr"):
        MqttGatewayOptions(brokr="mqtt://h")
    options = MqttGatewayOptions(broker="mqtt://h")
    with pytest.raises(ValidationError):
        options.keepalive = 5


def test_defaults():
    options = MqttGatewayOptions()
    assert options.broker == "embedded"
    assert options.max_payload == 268_435_455
    assert (options.reconnect.initial, options.reconnect.maximum) == (0.5, 30.0)
    assert (options.protocol, options.keepalive, options.publish_timeout) == ("3.1.1", 60, 10.0)


def test_generated_client_id_names_the_gateway():
    async def app(scope, receive, send):  # pragma: no cover - never called
        pass

    one = MqttGateway("sensors", app, MqttGatewayOptions()).client_id
    two = MqttGateway("sensors", app, MqttGatewayOptions()).client_id
    assert one.startswith("asgi-gateway-sensors-")
    assert one != two
    fixed = MqttGateway("sensors", app, MqttGatewayOptions(client_id="plant-1")).client_id
    assert fixed == "plant-1"


def test_duplicate_subscription_is_refused():
    with pytest.raises(ValidationError, match="'a/#' is listed twice"):
        MqttGatewayOptions(subscriptions=[{"topic": "a/#"}, {"topic": "a/#", "qos": 1}])


def test_reconnect_maximum_not_below_initial():
    with pytest.raises(ValidationError, match=r"below reconnect\.initial"):
        MqttGatewayOptions(reconnect={"initial": 5, "maximum": 1})


def test_scope_rule_levels():
    with pytest.raises(ValidationError, match="levels=3 but the filter matches topics of 2"):
        MqttGatewayOptions(scopes=[{"filter": "devices/+", "levels": 3}])
    with pytest.raises(ValidationError):
        MqttGatewayOptions(scopes=[{"filter": "devices/#", "levels": 0}])
    with pytest.raises(ValidationError, match=r"not a \$share/ filter"):
        MqttGatewayOptions(scopes=[{"filter": "$share/g/d/#", "levels": 1}])
