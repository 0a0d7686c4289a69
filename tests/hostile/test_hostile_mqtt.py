"""Hostile MQTT publishes to the MQTT gateway, through a real Mosquitto, from a raw aiomqtt
client speaking MQTT 5: arbitrary topic levels under the routed filters (any unicode but
``/``, ``+``, ``#``, NUL and surrogates; long levels; control characters), arbitrary payload
bytes (not UTF-8, not JSON, JSON of the wrong shape, deeply nested, up to 64 KiB) and MQTT 5
properties (user properties, content type, correlation data, response topic, payload format
indicator 1 on a payload that is not UTF-8, message expiry).

The application is a ``JsonMqttConsumer`` with a pydantic model (``h/{device}/json``) and a
plain ``MqttConsumer`` (``r/{device}/#``), routed by ``TopicRouter``; each device's topics
share one scope (a ``scopes`` rule), and each consumer answers ``<prefix>/<device>/get`` by
echoing its payload to ``answers/<prefix>/<device>``. After each hostile publish the test
asks the same scope's ``get`` (so the hostile message was handled before the answer came)
and a well-behaved device's ``get``; both must be answered. A payload the JSON consumer
cannot use costs exactly one WARNING line, naming the gateway and the scope key, and no
traceback. The gateway's ``receive_maximum`` is small, so a QoS 1 message it failed to
acknowledge would stall delivery and the next answer would not come.

Mosquitto itself refuses a PUBLISH whose topic or string properties hold a control
character (U+0001-U+001F, U+007F-U+009F) or a noncharacter (it closes the connection;
MQTT 5.0 section 1.5.4 lets it), so such strings never reach the gateway and are not sent:
the strategies leave out the categories Cc, Cs and Cn. Bidi overrides, zero-width and other
format characters (Cf) are sent.

What it found, fixed at the source: U+FEFF in a string property made paho drop the
connection (MQTT 5.0 section 1.5.4 says keep it), and Mosquitto sent the message again on
every reconnect, so one publish cut the gateway off for good; an integer of over 4300
digits in a JSON payload raised ``ValueError`` past the JSON consumer's checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiomqtt
import pytest
import pytest_asyncio
from hostile_helpers import LogCheck, hostile_settings
from hypothesis import example, given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel

from consumers import JsonMqttConsumer, MqttConsumer, ProtocolTypeRouter, TopicRouter, route
from gateways.mqtt import MqttGateway, MqttGatewayOptions
from gateways.testing import Mosquitto

pytestmark = [pytest.mark.mosquitto, pytest.mark.asyncio(loop_scope="module")]

#: The logger of the raw clients: what Mosquitto does to them is not the gateway's log.
CLIENT_LOGGER = "hostile.mqtt.client"


class Reading(BaseModel):
    temperature: float


async def answer_get(consumer: MqttConsumer, message: Any) -> bool:
    """Echo a ``.../get`` payload to ``answers/<scope key>``; ``False`` for other topics."""
    if not message["topic"].endswith("/get"):
        return False
    key = consumer.scope["scope_key"]
    await consumer.publish(f"answers/{key}", message["payload"], qos=1)
    return True


class JsonDevice(JsonMqttConsumer):
    model = Reading

    async def receive(self, message: Any) -> None:
        if not await answer_get(self, message):
            await super().receive(message)

    async def receive_json(self, data: Any, message: Any) -> None:
        key = self.scope["scope_key"]
        await self.publish_json(f"state/{key}", {"temperature": data.temperature})


class RawDevice(MqttConsumer):
    async def receive(self, message: Any) -> None:
        await answer_get(self, message)


json_device = JsonDevice.as_asgi()
application = ProtocolTypeRouter(
    {
        "mqtt": TopicRouter(
            [
                route("h/{device}/json", json_device),
                route("h/{device}/get", json_device),
                route("r/{device}/#", RawDevice.as_asgi()),
            ]
        )
    }
)


class Raw:
    """A raw MQTT 5 client; ``answers`` collects what arrives on ``answers/#``."""

    def __init__(self, broker: Mosquitto, client_id: str) -> None:
        self.broker = broker
        self.client_id = client_id
        self.client: aiomqtt.Client | None = None
        self.reader: asyncio.Task[None] | None = None
        self.answers: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def connect(self, *, listen: bool = False) -> None:
        self.client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=5,
            logger=logging.getLogger(CLIENT_LOGGER),
        )
        async with asyncio.timeout(10):
            await self.client.__aenter__()
        if listen:
            async with asyncio.timeout(5):
                await self.client.subscribe("answers/#", qos=1)
            self.reader = asyncio.create_task(self._read(self.client))

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            self.answers.put_nowait((str(message.topic), payload))

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self.reader
        if self.client is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(10):
                    await self.client.__aexit__(None, None, None)
        self.client = None

    async def publish(
        self, topic: str, payload: bytes, properties: Properties | None = None
    ) -> None:
        """Publish at QoS 1 and wait for Mosquitto's PUBACK."""
        assert self.client is not None
        try:
            async with asyncio.timeout(5):
                await self.client.publish(topic, payload, qos=1, properties=properties)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            pytest.fail(f"Mosquitto did not acknowledge a publish on {topic[:80]!r}: {exc!r}")


@dataclass
class Setup:
    broker: Mosquitto
    gateway: MqttGateway
    hostile: Raw
    device: Raw
    nonces: itertools.count[int]

    async def answered(self, key: str, within: float = 10.0) -> None:
        """Ask ``<key>/get`` (as the well-behaved device) and wait for its answer."""
        nonce = f"{next(self.nonces)}".encode()
        await self.device.publish(f"{key}/get", nonce)
        try:
            async with asyncio.timeout(within):
                while (await self.device.answers.get()) != (f"answers/{key}", nonce):
                    pass
        except TimeoutError:
            pytest.fail(f"no answer on answers/{key} within {within} s: the gateway stalled")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mqtt() -> AsyncIterator[Setup]:
    async with Mosquitto.started() as broker:
        options = MqttGatewayOptions(
            broker=broker.url,
            protocol="5",
            route_qos=1,
            # A few unacknowledged QoS 1 messages in flight stall delivery at once.
            receive_maximum=5,
            scopes=[{"filter": "h/+/#", "levels": 2}, {"filter": "r/+/#", "levels": 2}],
        )
        gateway = MqttGateway("mqtt", application, options)
        async with asyncio.timeout(10):
            await gateway.start()
        hostile = Raw(broker, "mallory")
        device = Raw(broker, "device")
        await hostile.connect()
        await device.connect(listen=True)
        setup = Setup(broker, gateway, hostile, device, itertools.count())
        try:
            await setup.answered("h/good")
            yield setup
        finally:
            await hostile.close()
            await device.close()
            async with asyncio.timeout(15):
                await gateway.stop(drain_timeout=2)


class GatewayLog(LogCheck):
    """``LogCheck`` without the raw clients' own records."""

    def records(self) -> list[logging.LogRecord]:
        return [r for r in super().records() if not r.name.startswith(CLIENT_LOGGER)]


# -- strategies -----------------------------------------------------------------------------

# Any character Mosquitto lets through (no control characters, surrogates or noncharacters),
# but the level separator and the wildcards.
ACCEPTED = ("Cc", "Cs", "Cn")
level_chars = st.characters(exclude_categories=ACCEPTED, exclude_characters="/+#")
levels = st.one_of(
    st.text(level_chars, max_size=20),
    st.text(level_chars, min_size=200, max_size=400),
    st.sampled_from(["", " ", "$SYS", "..", "\u202e", "\u200b", "\ufeff", "\u2066x\u2069"]),
)
json_texts = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
).map(lambda data: json.dumps(data).encode())
payloads = st.one_of(
    st.binary(max_size=100),
    st.text(max_size=60).map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_texts,
    st.builds(
        lambda value: json.dumps({"temperature": value}).encode(),
        st.one_of(st.text(max_size=10), st.none(), st.lists(st.integers(), max_size=3)),
    ),
    st.binary(min_size=60_000, max_size=65_536),
    st.sampled_from(
        [
            b"",
            b"\xff\xfe",
            b"NaN",
            b'{"temperature": NaN}',
            b'{"temperature": 1e999}',
            b'{"temperature": 20}' * 3,
            b'{"temperature": 2' + b"0" * 5000 + b"}",
        ]
    ),
)
mqtt_strings = st.text(st.characters(exclude_categories=ACCEPTED), max_size=30)
properties = st.fixed_dictionaries(
    {},
    optional={
        "UserProperty": st.lists(st.tuples(mqtt_strings, mqtt_strings), max_size=4),
        "ContentType": mqtt_strings,
        "CorrelationData": st.binary(max_size=40),
        "ResponseTopic": st.lists(levels, min_size=1, max_size=3).map("/".join).filter(bool),
        "PayloadFormatIndicator": st.sampled_from([0, 1]),
        "MessageExpiryInterval": st.integers(0, 4_294_967_295),
    },
)


def paho_properties(values: dict[str, Any]) -> Properties | None:
    if not values:
        return None
    paho = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(paho, name, value)
    return paho


def json_refuses(payload: bytes) -> bool:
    """Whether ``JsonDevice`` must refuse ``payload`` (with one WARNING line)."""
    try:
        Reading.model_validate(json.loads(payload.decode("utf-8")))
    except (ValueError, RecursionError):
        return True
    return False


# -- tests ----------------------------------------------------------------------------------


@hostile_settings(120)
@given(
    kind=st.sampled_from(["json", "raw"]),
    level=levels,
    rest=st.lists(levels, max_size=3),
    payload=payloads,
    props=properties,
)
@example(kind="json", level="d1", rest=[], payload=b"\xff", props={"PayloadFormatIndicator": 1})
@example(kind="json", level="d1", rest=[], payload=b'{"temperature": "hot"}', props={})
# paho 2.2 dropped the connection on U+FEFF in a property, and Mosquitto sent the message
# again on every reconnect (gateways/mqtt/properties.py, mend_paho_strings).
@example(kind="json", level="", rest=[], payload=b"[[[null]]]", props={"ResponseTopic": "\ufeff/0"})
@example(kind="raw", level="d3", rest=[], payload=b"", props={"UserProperty": [("\ufeff", "")]})
# json.loads raises a plain ValueError for an integer over 4300 digits.
@example(kind="json", level="d4", rest=[], payload=b"[1" + b"0" * 5000 + b"]", props={})
@example(kind="json", level="\u202e\u200d", rest=[], payload=b"1", props={})
@example(kind="raw", level="\u202egood", rest=["", "x"], payload=b"", props={})
@example(
    kind="raw",
    level="d2",
    rest=[],
    payload=b"\x00\xff",
    props={"UserProperty": [("\u202e", "")], "ResponseTopic": "a/\u200b", "ContentType": ""},
)
async def test_hostile_publishes_cost_one_line_and_devices_are_answered(
    mqtt: Setup,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    level: str,
    rest: list[str],
    payload: bytes,
    props: dict[str, Any],
) -> None:
    log = GatewayLog(caplog)
    log.mark()
    key = f"h/{level}" if kind == "json" else f"r/{level}"
    topic = f"{key}/json" if kind == "json" else "/".join([key, *rest])
    if topic.endswith("/get"):
        topic += "/not"
    await mqtt.hostile.publish(topic, payload, paho_properties(props))
    # The same scope answers only after it handled the hostile message.
    await mqtt.answered(key)
    await mqtt.answered("h/good")
    what = (topic[:100], payload[:100], props)
    refused = kind == "json" and json_refuses(payload)
    log.check(what, warnings=1 if refused else 0)
    if refused:
        (warning,) = [r for r in log.records() if r.levelno == logging.WARNING]
        assert warning.name == "consumers.mqtt", what
        text = warning.getMessage()
        assert "gateway 'mqtt'" in text, text
        assert f"scope key {key!r}" in text, text


async def test_deeply_nested_json_costs_one_line(
    mqtt: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """JSON nested deeper than Python's recursion limit is a payload like any other that
    is not JSON: one WARNING, and the device's scope goes on (``json.loads`` raises
    ``RecursionError`` for it, not ``JSONDecodeError``)."""
    log = GatewayLog(caplog)
    log.mark()
    before = JsonDevice.invalid_payload_count()
    await mqtt.hostile.publish("h/deep/json", b"[" * 5000)
    await mqtt.answered("h/deep")
    log.check("5000 [", warnings=1)
    assert JsonDevice.invalid_payload_count() == before + 1


async def test_the_gateway_kept_up(mqtt: Setup) -> None:
    """After every hostile publish above: still connected, and a device is answered at once
    on a fresh scope as on the old one."""
    await mqtt.answered("h/fresh")
    await mqtt.answered("r/fresh")
    await mqtt.answered("h/good")
