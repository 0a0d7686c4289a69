"""The thermostat example in process: per-device state and alerts to the telemetry group."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from consumers import ChatCommunicator, MqttCommunicator
from layer import InMemoryChannelLayer
from layer.addressing import scope_channel
from layer.state import MemoryStateStore

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "thermostat"


@pytest.fixture
def thermostat(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("THERMOSTAT_ALERT_ABOVE", "25")
    monkeypatch.syspath_prepend(str(EXAMPLE))
    sys.modules.pop("thermostat", None)
    import thermostat

    yield thermostat
    sys.modules.pop("thermostat", None)


async def reading(communicator: MqttCommunicator, device: str, value: float) -> dict[str, float]:
    await communicator.send_message(
        json.dumps({"temperature": value}).encode(), topic=f"devices/{device}/telemetry"
    )
    state = await communicator.receive_publish(timeout=1)
    assert state["topic"] == f"devices/{device}/state"
    assert state["retain"] is True
    result: dict[str, float] = json.loads(state["payload"])
    return result


async def test_a_reading_above_the_threshold_is_sent_to_the_telemetry_group(
    thermostat: ModuleType,
) -> None:
    layer = InMemoryChannelLayer()
    watcher = await layer.new_channel()
    await layer.group_add("telemetry", watcher)
    communicator = MqttCommunicator(
        thermostat.application,
        "devices/kitchen/telemetry",
        channel_layer=layer,
        state_store=MemoryStateStore(),
    )
    await communicator.connect()
    assert await reading(communicator, "kitchen", 21.0) == {"last": 21.0, "avg": 21.0, "count": 1}
    await communicator.receive_nothing()
    assert await reading(communicator, "kitchen", 27.0) == {"last": 27.0, "avg": 24.0, "count": 2}
    alert = await layer.receive(watcher)
    assert alert == {
        "type": "telemetry.alert",
        "device_id": "kitchen",
        "temperature": 27.0,
        "threshold": 25.0,
    }
    await communicator.disconnect()


async def test_an_invalid_reading_is_counted_and_the_device_goes_on(
    thermostat: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    communicator = MqttCommunicator(
        thermostat.application,
        "devices/hall/telemetry",
        channel_layer=InMemoryChannelLayer(),
        state_store=MemoryStateStore(),
    )
    await communicator.connect()
    before = thermostat.DeviceConsumer.invalid_payload_count()
    await communicator.send_message(b'{"temperature": "warm"}', topic="devices/hall/telemetry")
    await communicator.send_message(b"not json", topic="devices/hall/telemetry")
    await communicator.receive_nothing()
    assert thermostat.DeviceConsumer.invalid_payload_count() == before + 2
    assert "devices/hall/telemetry" in caplog.text
    assert await reading(communicator, "hall", 19.0) == {"last": 19.0, "avg": 19.0, "count": 1}
    await communicator.send_message(b"", topic="devices/hall/get")
    reply = await communicator.receive_publish(timeout=1)
    assert reply["topic"] == "devices/hall/state/reply"
    assert json.loads(reply["payload"]) == {"last": 19.0, "avg": 19.0, "count": 1}
    await communicator.disconnect()


# -- devices meet chat: the chat consumers ask the device consumers over the layer ------------


@contextlib.asynccontextmanager
async def devices_gateway(
    app: object, layer: InMemoryChannelLayer, scopes: dict[str, MqttCommunicator]
) -> AsyncIterator[dict[str, MqttCommunicator]]:
    """The ``devices`` gateway's side of addressed events, for communicators: each event
    sent to a scope key goes to its communicator in ``scopes``, or to a new one opened by key
    (``topic`` None), as the MQTT gateway does (``tests/gateways/test_addressing.py`` runs
    the real one)."""

    async def deliver() -> None:
        while True:
            envelope = await layer.receive(scope_channel("devices"))
            key = envelope["scope_key"]
            if key not in scopes:
                scopes[key] = MqttCommunicator(
                    app, None, scope_key=key, channel_layer=layer, state_store=MemoryStateStore()
                )
                await scopes[key].connect()
            await scopes[key].send_input(envelope["event"])

    task = asyncio.get_running_loop().create_task(deliver())
    try:
        yield scopes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_chat_asks_the_device_consumers_over_the_channel_layer(
    thermostat: ModuleType,
) -> None:
    layer = InMemoryChannelLayer()
    kitchen = MqttCommunicator(
        thermostat.application,
        "devices/kitchen/telemetry",
        channel_layer=layer,
        state_store=MemoryStateStore(),
    )
    hall = MqttCommunicator(
        thermostat.application,
        "devices/hall/telemetry",
        channel_layer=layer,
        state_store=MemoryStateStore(),
    )
    chat = ChatCommunicator(thermostat.application, kind="direct", channel_layer=layer)
    for communicator in (kitchen, hall, chat):
        await communicator.connect()
    scopes = {"devices/kitchen": kitchen, "devices/hall": hall}
    async with devices_gateway(thermostat.application, layer, scopes):
        await ask_the_devices(chat, kitchen, hall)
    assert "devices/attic" in scopes  # `temp attic` started the attic's scope, by key
    for communicator in scopes.values():
        await communicator.disconnect()
    await chat.disconnect()


async def ask_the_devices(
    chat: ChatCommunicator, kitchen: MqttCommunicator, hall: MqttCommunicator
) -> None:
    await chat.say("temp kitchen")
    assert await chat.receive_text(timeout=5) == "No reading from kitchen yet."
    await reading(kitchen, "kitchen", 21.5)
    await reading(kitchen, "kitchen", 22.5)
    await reading(hall, "hall", 18.0)
    await chat.say("temp kitchen")
    assert await chat.receive_text(timeout=5) == (
        "kitchen: 22.5 °C, average 22.0 °C over 2 readings"
    )
    await chat.command("/temp", "hall")
    assert await chat.receive_text(timeout=5) == "hall: 18.0 °C, average 18.0 °C over 1 reading"
    await chat.say("temp attic")
    assert await chat.receive_text(timeout=5) == "No reading from attic yet."
    await chat.say("devices")
    assert await chat.receive_text(timeout=5) == "Devices: hall, kitchen"


async def test_the_alerts_conversation_posts_every_alert_of_the_telemetry_group(
    thermostat: ModuleType,
) -> None:
    layer = InMemoryChannelLayer()
    alerts = ChatCommunicator(
        thermostat.application, kind="group", name="alerts", channel_layer=layer
    )
    elsewhere = ChatCommunicator(
        thermostat.application, kind="group", name="general", channel_layer=layer
    )
    device = MqttCommunicator(
        thermostat.application,
        "devices/kitchen/telemetry",
        channel_layer=layer,
        state_store=MemoryStateStore(),
    )
    for communicator in (alerts, elsewhere, device):
        await communicator.connect()
    async with devices_gateway(thermostat.application, layer, {"devices/kitchen": device}):
        await alerts_and_temp(alerts, elsewhere, device)
    for communicator in (alerts, elsewhere, device):
        await communicator.disconnect()


async def alerts_and_temp(
    alerts: ChatCommunicator, elsewhere: ChatCommunicator, device: MqttCommunicator
) -> None:
    await reading(device, "kitchen", 24.0)  # under the threshold (25 here): no alert
    await reading(device, "kitchen", 31.0)
    assert await alerts.receive_text(timeout=5) == ("Alert: kitchen at 31.0 °C, above 25.0 °C")
    await alerts.receive_nothing()
    await elsewhere.receive_nothing()  # only the alerts conversation is in the group
    await alerts.say("temp kitchen")  # the alerts conversation takes commands too
    assert await alerts.receive_text(timeout=5) == (
        "kitchen: 31.0 °C, average 27.5 °C over 2 readings"
    )


# -- examples/idempotent: at least once, handled idempotently --------------------------------

IDEMPOTENT = Path(__file__).resolve().parent.parent / "examples" / "idempotent"


@pytest.fixture
def readings(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(IDEMPOTENT))
    sys.modules.pop("readings", None)
    import readings

    readings.READINGS.clear()
    yield readings
    sys.modules.pop("readings", None)


async def test_a_reading_delivered_again_is_stored_once(
    readings: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="readings")
    communicator = MqttCommunicator(readings.application, "devices/d1/readings")
    await communicator.connect()
    first = json.dumps({"seq": 1, "temperature": 21.5})
    await communicator.send_message(first, qos=1)
    # The broker sends it again after a crash, marked dup: nothing changes.
    await communicator.send_message(first.replace("21.5", "99"), qos=1, dup=True)
    # A redelivered reading never stored before (the crash came first) is stored.
    await communicator.send_message(json.dumps({"seq": 2, "temperature": 22.0}), qos=1, dup=True)
    await communicator.receive_nothing()
    assert readings.READINGS == {("d1", 1): 21.5, ("d1", 2): 22.0}
    assert "reading 1 of d1 came again; stored already" in caplog.text
    await communicator.disconnect()


def test_the_idempotent_example_file_is_valid() -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "gateways", "check", str(IDEMPOTENT / "gateway.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
