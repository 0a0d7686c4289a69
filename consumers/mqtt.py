"""MQTT consumers: hooks for the ``mqtt.*`` events and helpers that send them.

The scope and events are those of ``docs/specs/mqtt.md`` (``layer/types.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from prometheus_client import REGISTRY, Counter
from pydantic import BaseModel, ValidationError

from consumers.base import AsyncConsumer, ConsumerError, StopConsumer
from layer.topics import InvalidTopic, validate_topic_filter, validate_topic_name

if TYPE_CHECKING:
    from layer.types import (
        DisconnectReason,
        MqttDisconnectEvent,
        MqttMessageEvent,
        MqttProperties,
        MqttPublishEvent,
    )

__all__ = ["INVALID_PAYLOADS", "JsonMqttConsumer", "MqttConsumer"]

logger = logging.getLogger(__name__)

INVALID_PAYLOADS = Counter(
    "asgi_gateway_invalid_payloads",
    "MQTT payloads a JsonMqttConsumer could not use (not UTF-8, not JSON, or not its model).",
    ["consumer"],
)

#: Most bytes of a payload quoted in a log line.
PAYLOAD_PREVIEW_BYTES = 200


def _as_consumer_error(rule: Callable[[str], str], value: str) -> None:
    """Apply a rule of ``layer.topics``, failing with ``ConsumerError`` as consumers do."""
    try:
        rule(value)
    except InvalidTopic as exc:
        raise ConsumerError(str(exc)) from None


def _check_qos(qos: object) -> None:
    if qos not in (0, 1, 2) or isinstance(qos, bool):
        raise ConsumerError(f"QoS must be 0, 1 or 2 (MQTT 5.0 section 4.3), got {qos!r}")


class MqttConsumer(AsyncConsumer):
    """A consumer of one MQTT scope: override ``connect``, ``receive`` and ``disconnect``.

    ``mqtt.connect`` calls ``connect()``; each ``mqtt.message`` calls ``receive(message)``
    with the event (``topic``, ``payload`` bytes, ``qos``, ``retain``, ``properties``);
    ``mqtt.disconnect`` calls ``disconnect(reason)`` and ends the consumer.

    Example::

        class Thermostat(MqttConsumer):
            async def receive(self, message):
                device = self.scope["route"]["kwargs"]["device_id"]
                if float(message["payload"]) > 30:
                    await self.publish(f"devices/{device}/fan", "on", qos=1)
    """

    #: What this consumer publishes, for documentation only (``asgi-gateway asyncapi``,
    #: ``docs/asyncapi.md``): topic templates, whose levels are literal text or ``{name}``
    #: captures, to the pydantic model of their payloads (``None``: no schema), e.g.
    #: ``{"devices/{device_id}/state": State}``. ``publish`` does not check against it.
    publishes: ClassVar[Mapping[str, type[BaseModel] | None]] = {}

    async def mqtt_connect(self, message: Any) -> None:
        await self.connect()

    async def mqtt_message(self, message: Any) -> None:
        await self.receive(message)

    async def mqtt_disconnect(self, message: MqttDisconnectEvent) -> None:
        await self.disconnect(message.get("reason", "closed"))
        raise StopConsumer

    async def connect(self) -> None:
        """Called when the scope opens, before its first message."""

    async def receive(self, message: MqttMessageEvent) -> None:
        """Called for each message of the scope, in arrival order."""

    async def disconnect(self, reason: DisconnectReason) -> None:
        """Called when the scope ends: ``"idle"``, ``"evicted"``, ``"closed"``, ``"shutdown"``."""

    async def publish(
        self,
        topic: str,
        payload: bytes | bytearray | str,
        qos: int = 0,
        retain: bool = False,
        properties: MqttProperties | None = None,
    ) -> None:
        """Publish a message (sends ``mqtt.publish``).

        Args:
            topic: A topic name, without wildcards.
            payload: The payload; a str is encoded as UTF-8.
            qos: 0, 1 or 2 (MQTT 5.0 section 4.3).
            retain: Ask the broker to retain it (MQTT 5.0 section 3.3.1.3).
            properties: MQTT 5 PUBLISH properties, or ``None``.

        Raises:
            ConsumerError: A bad topic name or QoS (a ``ValueError``).
            TypeError: The payload is neither bytes nor str.
        """
        _as_consumer_error(validate_topic_name, topic)
        _check_qos(qos)
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        elif isinstance(payload, bytearray):
            payload = bytes(payload)
        elif not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes or str, got {type(payload).__name__}")
        event: MqttPublishEvent = {
            "type": "mqtt.publish",
            "topic": topic,
            "payload": payload,
            "qos": qos,  # type: ignore[typeddict-item]
            "retain": bool(retain),
        }
        if properties is not None:
            event["properties"] = properties
        await self.send(event)  # type: ignore[arg-type]

    async def subscribe(self, topic: str, qos: int = 0) -> None:
        """Subscribe the gateway to a topic filter (sends ``mqtt.subscribe``).

        Raises:
            ConsumerError: A bad topic filter or QoS (a ``ValueError``).
        """
        _as_consumer_error(validate_topic_filter, topic)
        _check_qos(qos)
        await self.send({"type": "mqtt.subscribe", "topic": topic, "qos": qos})

    async def unsubscribe(self, topic: str) -> None:
        """Unsubscribe the gateway from a topic filter (sends ``mqtt.unsubscribe``).

        Raises:
            ConsumerError: A bad topic filter (a ``ValueError``).
        """
        _as_consumer_error(validate_topic_filter, topic)
        await self.send({"type": "mqtt.unsubscribe", "topic": topic})

    async def close(self) -> None:
        """Ask the gateway to end this scope (sends ``mqtt.close``).

        The gateway then sends ``mqtt.disconnect`` with reason ``"closed"``, which calls
        ``disconnect`` and ends the consumer.
        """
        await self.send({"type": "mqtt.close"})


class JsonMqttConsumer(MqttConsumer):
    """An MQTT consumer of JSON payloads: override ``receive_json``.

    Each payload is decoded (UTF-8), parsed (JSON) and, when ``model`` is set, validated into
    an instance of it. A payload that fails any step is logged (warning: gateway, scope key,
    topic, the error and at most 200 bytes of the payload), counted in the Prometheus counter
    ``asgi_gateway_invalid_payloads_total{consumer="module.Class"}``, and skipped: the
    consumer goes on.

    Attributes:
        model: A pydantic model to validate payloads into, or ``None`` for plain JSON.
    """

    model: ClassVar[type[BaseModel] | None] = None

    async def receive(self, message: MqttMessageEvent) -> None:
        payload = message["payload"]
        model = self.model
        try:
            data: Any = json.loads(payload.decode("utf-8"))
            if model is not None:
                data = model.model_validate(data)
        # ValueError: besides JSONDecodeError, UnicodeDecodeError and ValidationError (its
        # subclasses), an integer of more digits than sys.get_int_max_str_digits() (4300).
        # RecursionError: JSON nested deeper than Python's recursion limit (b"[" * 5000).
        except (ValueError, RecursionError) as exc:
            self._invalid_payload(message, exc)
            return
        await self.receive_json(data, message)

    async def receive_json(self, data: Any, message: MqttMessageEvent) -> None:
        """Called with each valid payload.

        Args:
            data: The parsed JSON, or an instance of ``model`` when it is set.
            message: The ``mqtt.message`` event.
        """

    async def publish_json(
        self,
        topic: str,
        data: Any,
        qos: int = 0,
        retain: bool = False,
        properties: MqttProperties | None = None,
    ) -> None:
        """Publish ``data`` as JSON (a pydantic model is dumped with ``model_dump_json``).

        Raises:
            ConsumerError: A bad topic name or QoS (a ``ValueError``).
            TypeError: ``data`` cannot be serialised to JSON.
        """
        if isinstance(data, BaseModel):
            text = data.model_dump_json()
        else:
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        await self.publish(topic, text, qos=qos, retain=retain, properties=properties)

    @classmethod
    def metric_label(cls) -> str:
        """The ``consumer`` label of this class in ``asgi_gateway_invalid_payloads_total``."""
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def invalid_payload_count(cls) -> int:
        """How many payloads instances of this class refused since the process started."""
        value = REGISTRY.get_sample_value(
            "asgi_gateway_invalid_payloads_total", {"consumer": cls.metric_label()}
        )
        return int(value or 0)

    def _invalid_payload(self, message: MqttMessageEvent, exc: Exception) -> None:
        INVALID_PAYLOADS.labels(self.metric_label()).inc()
        if isinstance(exc, ValidationError):
            why = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or '<root>'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            why = f"does not fit {exc.title}: {why}"
        elif isinstance(exc, UnicodeDecodeError):
            why = f"is not UTF-8: {exc.reason} at byte {exc.start}"
        elif isinstance(exc, RecursionError):
            why = "is JSON nested too deep to parse"
        elif isinstance(exc, json.JSONDecodeError):
            why = f"is not JSON: {exc}"
        else:
            why = f"is JSON that cannot be parsed: {exc}"
        payload = message["payload"]
        preview = payload[:PAYLOAD_PREVIEW_BYTES]
        logger.warning(
            "%s: payload on topic %r %s (gateway %r, scope key %r, %d bytes: %r%s); skipped",
            type(self).__qualname__,
            message.get("topic"),
            why,
            self.scope.get("gateway"),
            self.scope.get("scope_key"),
            len(payload),
            preview,
            "..." if len(payload) > PAYLOAD_PREVIEW_BYTES else "",
        )
