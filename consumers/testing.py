"""Test communicators: drive an MQTT application without a broker or a gateway.

For users' own tests, in the manner of Channels' ``WebsocketCommunicator``::

    async def test_thermostat():
        communicator = MqttCommunicator(application, "devices/d1/temperature")
        await communicator.connect()
        await communicator.send_message(b"31.5")
        event = await communicator.receive_publish()
        assert event["topic"] == "devices/d1/fan"
        await communicator.disconnect()
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from asgiref.testing import ApplicationCommunicator

if TYPE_CHECKING:
    from gateways.types import (
        ASGIApp,
        DisconnectReason,
        MqttMessageEvent,
        MqttProperties,
        MqttPublishEvent,
        MqttScope,
    )

__all__ = ["MqttCommunicator"]


class MqttCommunicator(ApplicationCommunicator):
    """Run an ASGI application on one MQTT scope, as the MQTT gateway would.

    Args:
        application: The ASGI application (a router, or ``Consumer.as_asgi()``).
        topic: The topic that opens the scope (``scope["topic"]``).
        scope_key: ``scope["scope_key"]``; defaults to ``topic``.
        gateway: ``scope["gateway"]``, the gateway's name.
        subscription: ``scope["subscription"]``, the topic filter that matched; defaults to
            ``topic``.
        channel_layer: Put in ``scope["channel_layer"]`` when given, as the gateway does.
    """

    scope: MqttScope

    def __init__(
        self,
        application: ASGIApp,
        topic: str,
        *,
        scope_key: str | None = None,
        gateway: str = "test",
        subscription: str | None = None,
        channel_layer: Any | None = None,
    ) -> None:
        scope: MqttScope = {
            "type": "mqtt",
            "asgi": {"version": "3.0", "spec_version": "1.0"},
            "gateway": gateway,
            "topic": topic,
            "scope_key": topic if scope_key is None else scope_key,
            "subscription": topic if subscription is None else subscription,
        }
        if channel_layer is not None:
            scope["channel_layer"] = channel_layer
        super().__init__(application, scope)  # type: ignore[no-untyped-call]

    async def connect(self, timeout: float = 1) -> None:  # noqa: ASYNC109 (as asgiref's)
        """Send ``mqtt.connect`` and wait until the application has taken it.

        A consumer joins its groups before it takes its first event, so after ``connect()``
        a ``group_send`` reaches it.

        Raises:
            TimeoutError: The application did not take the event within ``timeout`` seconds.
            Exception: Whatever the application raised.
        """
        await self.send_input({"type": "mqtt.connect"})  # type: ignore[no-untyped-call]
        await self._wait_taken(timeout)

    async def send_message(
        self,
        payload: bytes | str,
        topic: str | None = None,
        qos: int = 0,
        retain: bool = False,
        properties: MqttProperties | None = None,
    ) -> None:
        """Send an ``mqtt.message`` event (a str payload is encoded as UTF-8).

        Args:
            payload: The message payload.
            topic: The message's topic; defaults to the scope's topic.
            qos: The QoS it arrived with.
            retain: Whether it is a retained message.
            properties: MQTT 5 properties, or ``None``.
        """
        event: MqttMessageEvent = {
            "type": "mqtt.message",
            "topic": self.scope["topic"] if topic is None else topic,
            "payload": payload.encode("utf-8") if isinstance(payload, str) else bytes(payload),
            "qos": qos,  # type: ignore[typeddict-item]
            "retain": retain,
            "properties": properties,
        }
        await self.send_input(event)  # type: ignore[no-untyped-call]

    async def receive_publish(self, timeout: float = 1) -> MqttPublishEvent:  # noqa: ASYNC109
        """The next event the application sent, which must be ``mqtt.publish``.

        Raises:
            TimeoutError: No event within ``timeout`` seconds.
            AssertionError: The next event is of another type.
        """
        event = await self.receive_output(timeout)  # type: ignore[no-untyped-call]
        if event.get("type") != "mqtt.publish":
            raise AssertionError(f"expected an mqtt.publish event, got {event!r}")
        return cast("MqttPublishEvent", event)

    async def disconnect(
        self,
        reason: DisconnectReason = "closed",
        timeout: float = 1,  # noqa: ASYNC109 (timeouts as in asgiref's communicator)
    ) -> None:
        """Send ``mqtt.disconnect`` and wait for the application to return.

        Raises:
            TimeoutError: The application still runs ``timeout`` seconds later (it is then
                cancelled).
            Exception: Whatever the application raised.
        """
        await self.send_input({"type": "mqtt.disconnect", "reason": reason})  # type: ignore[no-untyped-call]
        done, _ = await asyncio.wait([self.future], timeout=timeout)
        if not done:
            self.future.cancel()
            await asyncio.wait([self.future])
            raise TimeoutError(
                f"the application did not return within {timeout} s of mqtt.disconnect"
            )
        if not self.future.cancelled():
            self.future.result()

    async def _wait_taken(self, timeout: float) -> None:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.input_queue.empty():
            if self.future.done():
                if not self.future.cancelled():
                    self.future.result()
                raise RuntimeError("the application ended without taking its events")
            if loop.time() >= deadline:
                raise TimeoutError(f"the application did not take an event within {timeout} s")
            await asyncio.sleep(0.001)
