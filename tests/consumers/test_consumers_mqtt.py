"""MqttConsumer hooks and helpers, JsonMqttConsumer payload handling."""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel

from consumers import ConsumerError, JsonMqttConsumer, MqttCommunicator, MqttConsumer

pytestmark = pytest.mark.timeout(10)


class Hooks(MqttConsumer):
    calls: ClassVar[list[Any]] = []

    async def connect(self) -> None:
        self.calls.append("connect")

    async def receive(self, message: Any) -> None:
        self.calls.append(message)
        await self.publish(f"{message['topic']}/ack", message["payload"])

    async def disconnect(self, reason: Any) -> None:
        self.calls.append(("disconnect", reason))


async def test_hooks_get_connect_messages_and_disconnect_reason() -> None:
    Hooks.calls = []
    communicator = MqttCommunicator(Hooks.as_asgi(), "devices/d1/cmd")
    await communicator.connect()
    await communicator.send_message(b"\x00\x01", qos=1, retain=True, properties={"topic_alias": 3})
    ack = await communicator.receive_publish()
    assert ack["topic"] == "devices/d1/cmd/ack"
    assert ack["payload"] == b"\x00\x01"
    await communicator.disconnect("idle")
    assert Hooks.calls == [
        "connect",
        {
            "type": "mqtt.message",
            "topic": "devices/d1/cmd",
            "payload": b"\x00\x01",
            "qos": 1,
            "retain": True,
            "dup": False,
            "properties": {"topic_alias": 3},
        },
        ("disconnect", "idle"),
    ]
    assert communicator.future.done()


class Helpers(MqttConsumer):
    async def receive(self, message: Any) -> None:
        command = json.loads(message["payload"])
        await getattr(self, command.pop("call"))(**command)


async def run_helper(**command: Any) -> dict[str, Any]:
    communicator = MqttCommunicator(Helpers.as_asgi(), "ctl")
    await communicator.connect()
    await communicator.send_message(json.dumps(command))
    event: dict[str, Any] = await communicator.receive_output()
    await communicator.disconnect()
    return event


@pytest.mark.parametrize(
    ("command", "event"),
    [
        (
            {"call": "publish", "topic": "a/b", "payload": "héllo"},
            {
                "type": "mqtt.publish",
                "topic": "a/b",
                "payload": "héllo".encode(),
                "qos": 0,
                "retain": False,
            },
        ),
        (
            {
                "call": "publish",
                "topic": "a/b",
                "payload": "x",
                "qos": 2,
                "retain": True,
                "properties": {"content_type": "text/plain"},
            },
            {
                "type": "mqtt.publish",
                "topic": "a/b",
                "payload": b"x",
                "qos": 2,
                "retain": True,
                "properties": {"content_type": "text/plain"},
            },
        ),
        (
            {"call": "subscribe", "topic": "devices/+/status", "qos": 1},
            {"type": "mqtt.subscribe", "topic": "devices/+/status", "qos": 1},
        ),
        (
            {"call": "subscribe", "topic": "$share/workers/jobs/#"},
            {"type": "mqtt.subscribe", "topic": "$share/workers/jobs/#", "qos": 0},
        ),
        (
            {"call": "unsubscribe", "topic": "devices/#"},
            {"type": "mqtt.unsubscribe", "topic": "devices/#"},
        ),
        ({"call": "close"}, {"type": "mqtt.close"}),
    ],
)
async def test_helpers_send_the_spec_events(command: dict[str, Any], event: Any) -> None:
    assert await run_helper(**command) == event


async def test_publish_sends_bytes_unchanged() -> None:
    class Raw(MqttConsumer):
        async def connect(self) -> None:
            await self.publish("bin", b"\xff\x00")

    communicator = MqttCommunicator(Raw.as_asgi(), "t")
    await communicator.connect()
    assert (await communicator.receive_publish())["payload"] == b"\xff\x00"
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("call", "error", "quoted"),
    [
        ({"topic": "a", "payload": b"", "qos": 3}, ValueError, "3"),
        ({"topic": "a", "payload": b"", "qos": -1}, ValueError, "-1"),
        ({"topic": "a", "payload": b"", "qos": True}, ValueError, "True"),
        ({"topic": "a/+", "payload": b""}, ValueError, "'a/+'"),
        ({"topic": "a/#", "payload": b""}, ValueError, "'a/#'"),
        ({"topic": "", "payload": b""}, ValueError, "''"),
        ({"topic": "a", "payload": 42}, TypeError, "int"),
    ],
)
async def test_publish_refuses_bad_arguments(
    call: dict[str, Any], error: type[Exception], quoted: str
) -> None:
    consumer = MqttConsumer()
    with pytest.raises(error) as caught:
        await consumer.publish(**call)
    assert quoted in str(caught.value)


@pytest.mark.parametrize(
    ("topic", "qos"), [("a/#/b", 0), ("a+/b", 0), ("sport#", 0), ("a", 5), ("", 0)]
)
async def test_subscribe_refuses_bad_filters_and_qos(topic: str, qos: int) -> None:
    with pytest.raises(ConsumerError) as caught:
        await MqttConsumer().subscribe(topic, qos)
    assert (repr(topic) if qos == 0 else str(qos)) in str(caught.value)


async def test_close_leads_to_disconnect_closed() -> None:
    class Closer(MqttConsumer):
        reasons: ClassVar[list[str]] = []

        async def connect(self) -> None:
            await self.close()

        async def disconnect(self, reason: Any) -> None:
            self.reasons.append(reason)

    communicator = MqttCommunicator(Closer.as_asgi(), "t")
    await communicator.connect()
    assert await communicator.receive_output() == {"type": "mqtt.close"}
    # The gateway answers mqtt.close with mqtt.disconnect, reason "closed".
    await communicator.disconnect("closed")
    assert Closer.reasons == ["closed"]


# -- JSON ---------------------------------------------------------------------------------


def invalid_count(consumer: type[JsonMqttConsumer]) -> float:
    value = REGISTRY.get_sample_value(
        "asgi_gateway_invalid_payloads_total", {"consumer": consumer.metric_label()}
    )
    return value or 0.0


class Reading(BaseModel):
    device: str
    celsius: float


class Echo(JsonMqttConsumer):
    async def receive_json(self, data: Any, message: Any) -> None:
        await self.publish_json("echo", {"data": data, "topic": message["topic"]})


class ModelEcho(JsonMqttConsumer):
    model = Reading

    async def receive_json(self, data: Any, message: Any) -> None:
        assert isinstance(data, Reading)
        await self.publish_json("echo", data, qos=1)


async def test_json_payload_reaches_receive_json() -> None:
    communicator = MqttCommunicator(Echo.as_asgi(), "devices/d1")
    await communicator.connect()
    await communicator.send_message('{"on": true, "level": [1, 2]}')
    event = await communicator.receive_publish()
    assert json.loads(event["payload"]) == {
        "data": {"on": True, "level": [1, 2]},
        "topic": "devices/d1",
    }
    await communicator.disconnect()


async def test_model_payload_is_validated_and_published_back() -> None:
    communicator = MqttCommunicator(ModelEcho.as_asgi(), "devices/d1")
    await communicator.connect()
    await communicator.send_message(b'{"device": "d1", "celsius": "21.5"}')
    event = await communicator.receive_publish()
    assert json.loads(event["payload"]) == {"device": "d1", "celsius": 21.5}
    assert event["qos"] == 1
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("consumer", "payload", "why"),
    [
        (Echo, b"\xff\xfe{}", "is not UTF-8"),
        (Echo, b'{"on": tru', "is not JSON"),
        (Echo, b"", "is not JSON"),
        (ModelEcho, b'{"device": "d1"}', "celsius: Field required"),
        (ModelEcho, b'{"device": "d1", "celsius": "warm"}', "celsius"),
        (ModelEcho, b"[1, 2]", "does not fit Reading"),
    ],
)
async def test_invalid_payload_is_logged_counted_and_skipped(
    consumer: type[JsonMqttConsumer],
    payload: bytes,
    why: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = invalid_count(consumer)
    communicator = MqttCommunicator(
        consumer.as_asgi(), "devices/d9/reading", scope_key="dev:d9", gateway="plant"
    )
    await communicator.connect()
    with caplog.at_level(logging.WARNING, logger="consumers.mqtt"):
        await communicator.send_message(payload)
        await communicator.send_message(b'{"device": "d9", "celsius": 1}')
        # The consumer goes on: the next, valid payload is handled.
        await communicator.receive_publish()
    assert invalid_count(consumer) == before + 1
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = record.getMessage()
    assert why in text
    assert "'devices/d9/reading'" in text
    assert "'plant'" in text
    assert "'dev:d9'" in text
    await communicator.disconnect()


async def test_log_of_a_large_invalid_payload_quotes_only_its_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = b"{" + b"x" * 5000 + b"SECRET-TAIL"
    communicator = MqttCommunicator(Echo.as_asgi(), "t")
    await communicator.connect()
    with caplog.at_level(logging.WARNING, logger="consumers.mqtt"):
        await communicator.send_message(payload)
        await communicator.send_message(b"{}")
        await communicator.receive_publish()
    assert "SECRET-TAIL" not in caplog.text
    assert "5012 bytes" in caplog.text
    assert len(caplog.records[0].getMessage()) < 600
    await communicator.disconnect()


async def test_counter_is_per_consumer_class() -> None:
    before_echo = invalid_count(Echo)
    before_model = invalid_count(ModelEcho)
    communicator = MqttCommunicator(ModelEcho.as_asgi(), "t")
    await communicator.connect()
    await communicator.send_message(b"not json")
    await communicator.send_message(b'{"device": "d", "celsius": 0}')
    await communicator.receive_publish()
    await communicator.disconnect()
    assert invalid_count(ModelEcho) == before_model + 1
    assert invalid_count(Echo) == before_echo


async def test_json_nested_too_deep_is_an_invalid_payload_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Deep(JsonMqttConsumer):
        async def receive_json(self, data: Any, message: Any) -> None:
            await self.publish("out", b"parsed")

    before = Deep.invalid_payload_count()
    communicator = MqttCommunicator(Deep.as_asgi(), "in")
    await communicator.connect()
    with caplog.at_level(logging.WARNING):
        await communicator.send_message(b"[" * 5000 + b"]" * 5000, topic="in")
        assert await communicator.receive_nothing(0.2)
    await communicator.disconnect()
    assert Deep.invalid_payload_count() == before + 1
    (record,) = [r for r in caplog.records if "nested too deep" in r.getMessage()]
    assert record.exc_info is None


async def test_json_integer_over_the_digit_limit_is_an_invalid_payload_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``json.loads`` raises a plain ``ValueError`` (not ``JSONDecodeError``) for an integer
    of more digits than ``sys.get_int_max_str_digits()``; found by tests/hostile."""

    class Big(JsonMqttConsumer):
        async def receive_json(self, data: Any, message: Any) -> None:
            await self.publish("out", b"parsed")

    before = Big.invalid_payload_count()
    communicator = MqttCommunicator(Big.as_asgi(), "in")
    await communicator.connect()
    with caplog.at_level(logging.WARNING):
        await communicator.send_message(b'{"temperature": 2' + b"0" * 5000 + b"}", topic="in")
        assert await communicator.receive_nothing(0.2)
        await communicator.send_message(b'{"temperature": 20}', topic="in")
        assert (await communicator.receive_publish())["payload"] == b"parsed"
    await communicator.disconnect()
    assert Big.invalid_payload_count() == before + 1
    (record,) = [r for r in caplog.records if "cannot be parsed" in r.getMessage()]
    assert record.exc_info is None
    assert "scope key" in record.getMessage()
