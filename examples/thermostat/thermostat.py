"""Thermostat: one long-lived consumer per device, keeping its readings.

Devices publish JSON telemetry such as ``{"temperature": 21.5}`` to
``devices/{device_id}/telemetry``. The gateway's ``scopes`` rule in ``gateway.yaml`` puts
every topic of one device in one scope, so one ``DeviceConsumer`` instance per device sees
both its telemetry and its ``get`` requests and keeps its state between them; the state is
stored (``state:`` in ``gateway.yaml``, a sqlite file), so it outlives the process. After each
reading it publishes ``{"last": ..., "avg": ..., "count": ...}``, retained, to
``devices/{device_id}/state``; a message on ``devices/{device_id}/get`` is answered with
the same JSON on ``devices/{device_id}/state/reply``. Every device consumer is in the group
``telemetry``; a reading above ``THERMOSTAT_ALERT_ABOVE`` (degrees, default 30) is sent to
that group as a ``telemetry.alert`` message, for any consumer in the group (a chat
conversation, a worker) to act on.

Each reading also sets the device's ``watchdog`` timer, ``THERMOSTAT_WATCHDOG`` seconds
(default 600) on: a device that falls silent that long gets a ``thermostat.silent`` event,
and its consumer sends ``telemetry.silent`` to the group. The timer is stored with the
state, so it fires also when the daemon was restarted meanwhile (late, then), starting the
device's scope.

Devices meet chat over the channel layer. One ``ThermostatChat`` instance per chat
conversation (the console, Slack, IRC) answers ``temp kitchen`` by sending a
``thermostat.query`` to the scope of that device (``send_to_scope``: gateway ``devices``,
key ``devices/kitchen``), which answers on the query's ``reply_channel``; that scope is
started for it, with its stored state, if it is not running. ``devices`` asks every running
device at once: each device consumer is in the group ``thermostats``. The conversation named
``alerts``, which the gateway opens at start (its ``conversations`` option), joins
``telemetry`` and posts every alert and every silence.

On the embedded broker, two simulated devices (``simulated.py``, the application's lifespan
part) publish readings, so that ``temp kitchen`` has an answer on a fresh machine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel
from simulated import simulated_devices

from consumers import (
    ChatConsumer,
    ConversationRouter,
    JsonMqttConsumer,
    ProtocolTypeRouter,
    TopicRouter,
    chat_route,
    command,
    route,
)

if TYPE_CHECKING:
    from layer.types import ChatMessageEvent, MqttMessageEvent

logger = logging.getLogger(__name__)

#: Degrees above which a reading is sent to the ``telemetry`` group as an alert.
ALERT_ABOVE = float(os.environ.get("THERMOSTAT_ALERT_ABOVE", "30"))
TELEMETRY_GROUP = "telemetry"
#: What ``temp`` and ``set`` take as a device id: one topic level of letters, digits, - or _.
DEVICE_ID = re.compile(r"[\w-]{1,64}")
#: Every device consumer is in this group, and answers the queries sent to it.
DEVICES_GROUP = "thermostats"
#: Seconds without a reading after which a device is reported silent (its watchdog timer).
WATCHDOG = float(os.environ.get("THERMOSTAT_WATCHDOG", "600"))
#: The devices' gateway, as gateway.yaml names it: ``temp`` addresses its scopes.
DEVICES_GATEWAY = "devices"
#: Seconds ``temp`` waits for the device's answer at most (it comes at once; this only
#: bounds a lost message), and ``devices`` for all answers.
ANSWER_WITHIN = float(os.environ.get("THERMOSTAT_ANSWER_WITHIN", "2"))
ROLL_CALL_WITHIN = float(os.environ.get("THERMOSTAT_ROLL_CALL_WITHIN", "0.5"))


class Telemetry(BaseModel):
    """A device's reading; other keys a device sends are ignored."""

    temperature: float


class Setpoint(BaseModel):
    """A command to a device: the temperature to hold, in degrees Celsius."""

    setpoint: float


class State(BaseModel):
    """A device's state, published after each reading and in answer to ``get``."""

    last: float | None
    avg: float | None
    count: int


class DeviceState(BaseModel):
    """What a device's consumer keeps across readings, and across restarts: the YAML's
    ``state:`` section stores it (docs/state.md)."""

    last: float | None = None
    total: float = 0.0
    count: int = 0


class DeviceConsumer(JsonMqttConsumer):
    """One instance per device: the last reading, a running average, the count, kept in
    ``self.state`` (a ``DeviceState``, loaded when the device's scope starts and saved after
    each reading, so a restart or an idle timeout loses nothing)."""

    model = Telemetry
    state_model = DeviceState
    state_name = "thermostat.device"
    # What it publishes, for `asgi-gateway asyncapi` (docs/asyncapi.md); documentation only.
    publishes: ClassVar[dict[str, type[BaseModel]]] = {
        "devices/{device_id}/state": State,
        "devices/{device_id}/state/reply": State,
        "devices/{device_id}/setpoint": Setpoint,
    }
    groups = (TELEMETRY_GROUP, DEVICES_GROUP)

    async def connect(self) -> None:
        self.device_id: str = self.scope["route"]["kwargs"]["device_id"]

    def summary(self) -> dict[str, Any]:
        state = self.state
        avg = state.total / state.count if state.count else None
        return {"last": state.last, "avg": avg, "count": state.count}

    async def receive(self, message: MqttMessageEvent) -> None:
        if message["topic"].endswith("/get"):
            await self.publish_json(f"devices/{self.device_id}/state/reply", self.summary())
            return
        await super().receive(message)  # JSON, validated against Telemetry

    async def receive_json(self, data: Any, message: MqttMessageEvent) -> None:
        reading = Telemetry.model_validate(data).temperature
        self.state.last = reading
        self.state.total += reading
        self.state.count += 1
        # Replaced by every reading: it fires only after WATCHDOG seconds of silence.
        self.set_timer("watchdog", {"type": "thermostat.silent"}, delay=WATCHDOG)
        state_topic = f"devices/{self.device_id}/state"
        await self.publish_json(state_topic, self.summary(), qos=1, retain=True)
        if reading > ALERT_ABOVE and self.channel_layer is not None:
            await self.channel_layer.group_send(
                TELEMETRY_GROUP,
                {
                    "type": "telemetry.alert",
                    "device_id": self.device_id,
                    "temperature": reading,
                    "threshold": ALERT_ABOVE,
                },
            )

    async def telemetry_alert(self, message: dict[str, Any]) -> None:
        """Devices share the group with whoever acts on alerts; a device only logs them."""
        if message["device_id"] != self.device_id:
            return
        logger.info(
            "Device %s above %.1f: %.1f", self.device_id, ALERT_ABOVE, message["temperature"]
        )

    async def thermostat_silent(self, event: dict[str, Any]) -> None:
        """The watchdog fired: no reading for ``WATCHDOG`` seconds (more if the daemon was
        down at its ``due`` time). Tell the ``telemetry`` group."""
        if self.channel_layer is not None:
            silent_for = time.time() - event["due"] + WATCHDOG
            await self.channel_layer.group_send(
                TELEMETRY_GROUP,
                {"type": "telemetry.silent", "device_id": self.device_id, "seconds": silent_for},
            )

    async def telemetry_silent(self, message: dict[str, Any]) -> None:
        """Devices share the ``telemetry`` group with the alerts conversation; not for them."""

    async def thermostat_query(self, message: dict[str, Any]) -> None:
        """A chat consumer asks for this device's state (``device_id``) or every device's
        (``device_id`` None); the answer goes to its ``reply_channel``."""
        device_id = self.scope["route"]["kwargs"]["device_id"]
        if message.get("device_id") not in (None, device_id) or self.channel_layer is None:
            return
        await self.channel_layer.send(
            message["reply_channel"],
            {"type": "thermostat.state", "device_id": device_id, **self.summary()},
        )

    async def thermostat_set(self, message: dict[str, Any]) -> None:
        """A chat consumer sets this device's setpoint (``device_id``, ``setpoint``): the
        command goes out on ``devices/<id>/setpoint`` (QoS 1, retained, so a device that
        reconnects gets it); the answer goes to the ``reply_channel``."""
        if message.get("device_id") != self.device_id or self.channel_layer is None:
            return
        command = Setpoint(setpoint=message["setpoint"]).model_dump()
        await self.publish_json(f"devices/{self.device_id}/setpoint", command, qos=1, retain=True)
        await self.channel_layer.send(
            message["reply_channel"], {"type": "thermostat.state", **command, **self.summary()}
        )


class ThermostatChat(ChatConsumer):
    """One instance per chat conversation: asks the device consumers over the channel layer."""

    @command("temp", help="a device's latest reading and its average", usage="<device>")
    async def temp(self, message: ChatMessageEvent, args: list[str]) -> str:
        if len(args) != 1 or not DEVICE_ID.fullmatch(args[0]):
            return "Which device? Say: temp <device>, e.g. temp kitchen"
        state = await self.ask_device(args[0])
        if state is None or state["count"] == 0:
            return f"No reading from {args[0]} yet."
        readings = "1 reading" if state["count"] == 1 else f"{state['count']} readings"
        return f"{args[0]}: {state['last']:.1f} °C, average {state['avg']:.1f} °C over {readings}"

    @command("devices", help="the devices that have reported")
    async def devices(self, message: ChatMessageEvent, args: list[str]) -> str:
        answers = await self.ask(None, ROLL_CALL_WITHIN)
        names = sorted(a["device_id"] for a in answers if a["count"])
        return f"Devices: {', '.join(names)}" if names else "No device has reported yet."

    # A device command: examples/thermostat/gateway.yaml's `access:` keeps the `device` tag
    # to the operators group.
    @command("set", help="set a device's setpoint", usage="<device> <°C>", tags=["device"])
    async def set(self, message: ChatMessageEvent, args: list[str]) -> str:
        try:
            device_id, setpoint = args[0], float(args[1])
        except (IndexError, ValueError):
            return "Say: set <device> <°C>, e.g. set kitchen 19.5"
        if len(args) != 2 or not -50 <= setpoint <= 50:
            return "Say: set <device> <°C>, with -50 to 50 °C"
        answers = await self.ask(device_id, ANSWER_WITHIN, type="thermostat.set", setpoint=setpoint)
        if not answers:
            return f"No device {device_id} has reported; nothing sent."
        return f"{device_id}: setpoint {setpoint:.1f} °C sent."

    async def ask_device(self, device_id: str) -> dict[str, Any] | None:
        """Send a ``thermostat.query`` to the scope of ``device_id`` (started if it is not
        running, its state loaded) and return its answer; ``None`` if none came within
        ``ANSWER_WITHIN`` seconds (the daemon is overloaded, or the answer was lost)."""
        layer = self.channel_layer
        if layer is None:
            return None
        reply_channel = await layer.new_channel("thermostat.answers.")
        query = {"type": "thermostat.query", "device_id": device_id, "reply_channel": reply_channel}
        await self.send_to_scope(DEVICES_GATEWAY, f"devices/{device_id}", query)
        try:
            async with asyncio.timeout(ANSWER_WITHIN):
                return await layer.receive(reply_channel)  # type: ignore[no-any-return]
        except TimeoutError:
            return None

    async def ask(
        self, device_id: str | None, within: float, **message: Any
    ) -> list[dict[str, Any]]:
        """Send a ``thermostat.query`` (or ``message``'s ``type``, with its keys) to the
        ``thermostats`` group and gather the answers for up to ``within`` seconds: the first
        answer for one device, every answer for all (``None``)."""
        layer = self.channel_layer
        if layer is None:
            return []
        reply_channel = await layer.new_channel("thermostat.answers.")
        query = {"type": "thermostat.query", **message, "device_id": device_id}
        await layer.group_send(DEVICES_GROUP, {**query, "reply_channel": reply_channel})
        answers: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + within
        try:
            async with asyncio.timeout_at(deadline):
                while device_id is None or not answers:
                    answers.append(await layer.receive(reply_channel))
        except TimeoutError:
            pass
        return answers


class AlertChat(ThermostatChat):
    """The ``alerts`` conversation: the same commands, and every alert of the ``telemetry``
    group posted as it comes."""

    groups = (TELEMETRY_GROUP,)

    async def telemetry_alert(self, message: dict[str, Any]) -> None:
        await self.say(
            f"Alert: {message['device_id']} at {message['temperature']:.1f} °C, "
            f"above {message['threshold']:.1f} °C"
        )

    async def telemetry_silent(self, message: dict[str, Any]) -> None:
        seconds = message["seconds"]
        silence = f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} seconds"
        await self.say(f"Alert: {message['device_id']} has not reported for {silence}")


device = DeviceConsumer.as_asgi()

application = ProtocolTypeRouter(
    {
        "mqtt": TopicRouter(
            [
                route("devices/{device_id}/telemetry", device),
                route("devices/{device_id}/get", device),
            ]
        ),
        "chat": ConversationRouter(
            [
                chat_route(AlertChat.as_asgi(), name="alerts"),
                chat_route(ThermostatChat.as_asgi()),
            ]
        ),
        # kitchen and garage, publishing readings on the embedded broker (simulated.py)
        "lifespan": simulated_devices,
    }
)
