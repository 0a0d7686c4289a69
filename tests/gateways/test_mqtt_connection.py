"""The MQTT gateway's connection: outages, reconnects, clean stop, will, embedded broker."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gateways.base import GatewayError
from gateways.mqtt import MqttGateway, MqttGatewayOptions

pytestmark = pytest.mark.mosquitto

ROOT = Path(__file__).resolve().parents[2]
FAST_RECONNECT = {"initial": 0.05, "maximum": 0.5}


def make_gateway(app: Any, broker: str, name: str = "mqtt", **options: Any) -> MqttGateway:
    options.setdefault("reconnect", FAST_RECONNECT)
    return MqttGateway(name, app, MqttGatewayOptions(broker=broker, **options))


def messages(log: Any) -> list[dict[str, Any]]:
    return [event for event in log.events if event["type"] == "mqtt.message"]


async def until(predicate: Any, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_reconnect_keeps_live_scopes_and_resubscribes(
    mosquitto, mqtt_client, recording_app, run_gateway, caplog
):
    subscribed: list[bool] = []

    async def control(log, event):
        if event["type"] == "mqtt.message" and event["payload"] == b"sub":
            await log.send({"type": "mqtt.subscribe", "topic": "extra/a"})
            subscribed.append(True)

    app = recording_app(on_event=control)
    gateway = await run_gateway(
        make_gateway(app, mosquitto.url, subscriptions=[{"topic": "dev/#", "qos": 1}])
    )
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("dev/a", b"sub", qos=1)
        await app.wait_for(lambda: bool(subscribed))
    (instance,) = gateway.instances.values()

    with caplog.at_level(logging.INFO, logger="gateways.mqtt"):
        mosquitto.stop()
        await until(lambda: not gateway.connected)
        mosquitto.start()  # same port, empty: no retained message, no subscription
        # Retained, so they arrive whenever the gateway subscribes again.
        async with mqtt_client(mosquitto.url) as probe:
            await probe.publish("dev/a", b"after", qos=1, retain=True)
            await probe.publish("extra/a", b"own", qos=1, retain=True)
            await app.wait_for(lambda: len(messages(app.logs[0])) == 3, within=10)

    (log,) = app.logs  # the same application instance, its state kept
    assert list(gateway.instances.values()) == [instance]
    assert log.types == ["mqtt.connect"] + ["mqtt.message"] * 3
    assert sorted(e["payload"] for e in messages(log)[1:]) == [b"after", b"own"]
    assert log.errors == []
    assert any("lost its connection" in r.message for r in caplog.records)
    assert any("reconnected" in r.message and r.levelno == logging.INFO for r in caplog.records)


async def test_a_subscribe_cut_by_an_outage_is_made_on_reconnect(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    app = recording_app()
    gateway = await run_gateway(
        make_gateway(app, mosquitto.url, subscriptions=[{"topic": "ctl/#"}], publish_timeout=60)
    )
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("ctl/a", b"open", qos=1)
        await app.wait_for(lambda: bool(app.logs) and len(app.logs[0].events) == 2)
    (log,) = app.logs
    mosquitto.pause()  # the SUBSCRIBE goes out, no SUBACK comes back
    subscribe = asyncio.create_task(log.send({"type": "mqtt.subscribe", "topic": "extra/a"}))
    await asyncio.sleep(0.1)
    mosquitto.kill()
    async with asyncio.timeout(10):  # returns with the connection, not after publish_timeout
        await subscribe
    mosquitto.start()
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("extra/a", b"made again", qos=1, retain=True)
        await app.wait_for(lambda: len(messages(log)) == 2, within=10)
    assert messages(log)[1]["payload"] == b"made again"
    assert gateway.connected


async def scope_in_an_outage(
    mosquitto, mqtt_client, recording_app, run_gateway, publish_timeout: float
):
    """A gateway with one open scope (topic "t"), then the broker stopped under it."""
    app = recording_app()
    gateway = await run_gateway(
        make_gateway(
            app, mosquitto.url, subscriptions=[{"topic": "t"}], publish_timeout=publish_timeout
        )
    )
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("t", b"open", qos=1)
        await app.wait_for(lambda: bool(app.logs) and len(app.logs[0].events) == 2)
    mosquitto.stop()
    await until(lambda: not gateway.connected)
    return app


async def test_publish_during_an_outage_waits_for_the_reconnect(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    app = await scope_in_an_outage(mosquitto, mqtt_client, recording_app, run_gateway, 10)
    publish = asyncio.create_task(
        app.logs[0].send(
            {"type": "mqtt.publish", "topic": "out", "payload": b"late", "qos": 1, "retain": True}
        )
    )
    await asyncio.sleep(0.2)
    assert not publish.done()  # waiting for the broker, not failed
    mosquitto.start()
    async with asyncio.timeout(10):
        await publish
    async with mqtt_client(mosquitto.url) as probe:
        await probe.subscribe("out")
        message = await probe.next()
    assert (message.payload, message.retain) == (b"late", True)


async def test_publish_fails_after_publish_timeout(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    app = await scope_in_an_outage(mosquitto, mqtt_client, recording_app, run_gateway, 0.3)
    with pytest.raises(GatewayError, match=r"publish to 'out' not done within 0.3 s"):
        async with asyncio.timeout(5):
            await app.logs[0].send({"type": "mqtt.publish", "topic": "out", "payload": b"x"})


async def test_starts_while_the_broker_is_down_then_serves(
    mosquitto, mqtt_client, recording_app, run_gateway, caplog
):
    mosquitto.stop()
    app = recording_app()
    gateway = make_gateway(app, mosquitto.url, subscriptions=[{"topic": "t/#"}])
    with caplog.at_level(logging.WARNING, logger="gateways.mqtt"):
        await run_gateway(gateway)  # returns after the first, failed, attempt
        assert not gateway.connected
        mosquitto.start()
        async with mqtt_client(mosquitto.url) as probe:
            await probe.publish("t/x", b"hello", qos=1, retain=True)
            await app.wait_for(lambda: any(messages(log) for log in app.logs), within=10)
    assert gateway.connected
    assert any("cannot connect to mqtt://127.0.0.1" in r.message for r in caplog.records)


async def test_password_is_never_logged(mosquitto, recording_app, run_gateway, caplog):
    broker = f"mqtt://alice:s3cret@127.0.0.1:{mosquitto.port}"
    gateway = make_gateway(recording_app(), broker, subscriptions=[{"topic": "t"}])
    with caplog.at_level(logging.DEBUG):
        await run_gateway(gateway)
        mosquitto.stop()  # a retry warning names the broker
        await until(lambda: any("cannot connect" in r.getMessage() for r in caplog.records))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"mqtt://alice:***@127.0.0.1:{mosquitto.port}" in text
    assert "s3cret" not in text


async def test_stop_disconnects_every_scope_without_publishing_the_will(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    app = recording_app()
    will = {"topic": "status/gw", "payload": "offline", "qos": 1}
    gateway = await run_gateway(
        make_gateway(app, mosquitto.url, subscriptions=[{"topic": "t/#"}], will=will)
    )
    async with mqtt_client(mosquitto.url) as probe:
        await probe.subscribe("status/#", qos=1)
        await probe.publish("t/a", b"1", qos=1)
        await probe.publish("t/b", b"2", qos=1)
        await app.wait_for(lambda: sum(len(messages(log)) for log in app.logs) == 2)
        async with asyncio.timeout(10):
            await gateway.stop()
        await probe.nothing(0.5)  # a clean DISCONNECT: no will
    assert not gateway.connected
    assert len(app.logs) == 2
    for log in app.logs:
        assert log.events[-1] == {"type": "mqtt.disconnect", "reason": "shutdown"}
    assert gateway.instances == {}


async def test_the_will_is_published_when_the_gateway_dies(mosquitto, mqtt_client):
    script = textwrap.dedent(
        """
        import asyncio, sys
        from gateways.mqtt import MqttGateway, MqttGatewayOptions

        async def app(scope, receive, send):
            while (await receive())["type"] != "mqtt.disconnect":
                pass

        async def main():
            options = MqttGatewayOptions(
                broker=sys.argv[1],
                subscriptions=[{"topic": "t"}],
                will={"topic": "status/doomed", "payload": "offline", "qos": 1},
            )
            await MqttGateway("doomed", app, options).start()
            print("ready", flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with mqtt_client(mosquitto.url) as probe:
        await probe.subscribe("status/#", qos=1)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, mosquitto.url, env=env, stdout=asyncio.subprocess.PIPE
        )
        try:
            async with asyncio.timeout(10):
                assert (await process.stdout.readline()).strip() == b"ready"
        finally:
            process.send_signal(signal.SIGKILL)
            async with asyncio.timeout(10):
                await process.wait()
        will = await probe.next()
    assert (will.topic.value, will.payload) == ("status/doomed", b"offline")


async def test_embedded_broker_round_trip(free_port, mqtt_client, recording_app, run_gateway):
    async def echo(log, event):
        if event["type"] == "mqtt.message":
            await log.send(
                {"type": "mqtt.publish", "topic": "out/echo", "payload": event["payload"]}
            )

    port = free_port()
    app = recording_app(on_event=echo)
    gateway = make_gateway(
        app, f"embedded://127.0.0.1:{port}", subscriptions=[{"topic": "in/#", "qos": 1}]
    )
    await run_gateway(gateway)
    async with mqtt_client(f"mqtt://127.0.0.1:{port}") as probe:
        await probe.subscribe("out/#")
        await probe.publish("in/x", b"ping", qos=1)
        reply = await probe.next()
        assert (reply.topic.value, reply.payload) == ("out/echo", b"ping")
        assert app.logs[0].scope["subscription"] == "in/#"
        async with asyncio.timeout(10):
            await gateway.stop()
    with pytest.raises(ConnectionRefusedError):  # the broker stopped with the gateway
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_embedded_broker_port_in_use(recording_app, run_gateway):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gateway = make_gateway(recording_app(), f"embedded://127.0.0.1:{port}")
        with pytest.raises(GatewayError, match=rf"127\.0\.0\.1:{port} is already in use"):
            await run_gateway(gateway)


async def test_embedded_broker_without_amqtt_says_what_to_install(
    free_port, recording_app, run_gateway, monkeypatch
):
    monkeypatch.setitem(sys.modules, "amqtt.broker", None)  # as if amqtt were not installed
    gateway = make_gateway(recording_app(), f"embedded://127.0.0.1:{free_port()}")
    with pytest.raises(GatewayError, match=r"pip install 'asgi-gateway\[embedded\]'"):
        await run_gateway(gateway)
