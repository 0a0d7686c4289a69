"""The MQTT gateway against a real Mosquitto: scopes, subscriptions, events both ways."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from gateways.base import GatewayError
from gateways.mqtt import MqttGateway, MqttGatewayOptions

pytestmark = pytest.mark.mosquitto


def make_gateway(app: Any, broker: str, name: str = "mqtt", **options: Any) -> MqttGateway:
    return MqttGateway(name, app, MqttGatewayOptions(broker=broker, **options))


def messages(log: Any) -> list[dict[str, Any]]:
    return [event for event in log.events if event["type"] == "mqtt.message"]


async def test_one_scope_per_topic(mosquitto, mqtt_client, recording_app, run_gateway):
    app = recording_app()
    await run_gateway(make_gateway(app, mosquitto.url, subscriptions=[{"topic": "t/#"}]))
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("t/a", b"1", qos=1)
        await probe.publish("t/b", b"2", qos=1)
        await probe.publish("t/a", b"3", qos=1)
        await app.wait_for(lambda: sum(len(log.events) for log in app.logs) == 5)

    (a,) = app.by_key("t/a")
    (b,) = app.by_key("t/b")
    assert a.types == ["mqtt.connect", "mqtt.message", "mqtt.message"]
    assert b.types == ["mqtt.connect", "mqtt.message"]
    assert a.events[1] == {
        "type": "mqtt.message",
        "topic": "t/a",
        "payload": b"1",
        "qos": 0,  # the subscription's QoS caps it
        "retain": False,
        "dup": False,
        "properties": None,
    }
    assert [event["payload"] for event in messages(a)] == [b"1", b"3"]
    assert a.scope == {
        "type": "mqtt",
        "asgi": {"version": "3.0", "spec_version": "1.0"},
        "gateway": "mqtt",
        "topic": "t/a",
        "scope_key": "t/a",
        "subscription": "t/#",
    }


async def test_scope_rule_groups_a_device_topics(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    app = recording_app()
    gateway = make_gateway(
        app,
        mosquitto.url,
        subscriptions=[{"topic": "devices/#"}],
        scopes=[{"filter": "devices/+/#", "levels": 2}],
    )
    await run_gateway(gateway)
    async with mqtt_client(mosquitto.url) as probe:
        for topic in ("devices/d1/temp", "devices/d2/temp", "devices/d1/hum"):
            await probe.publish(topic, topic.encode(), qos=1)
        await app.wait_for(lambda: sum(len(messages(log)) for log in app.logs) == 3)

    (d1,) = app.by_key("devices/d1")
    (d2,) = app.by_key("devices/d2")
    assert [event["topic"] for event in messages(d1)] == ["devices/d1/temp", "devices/d1/hum"]
    assert [event["topic"] for event in messages(d2)] == ["devices/d2/temp"]
    assert d1.scope["topic"] == "devices/d1/temp"  # the topic that opened the scope
    assert d1.scope["subscription"] == "devices/#"


async def test_subscribes_to_the_application_routes(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    app = recording_app()
    app.topic_filters = lambda: ["sensors/+/temp"]
    await run_gateway(make_gateway(app, mosquitto.url, route_qos=1))
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("sensors/s1/hum", b"not routed", qos=1)
        await probe.publish("sensors/s1/temp", b"21.5", qos=1)
        await app.wait_for(lambda: any(messages(log) for log in app.by_key("sensors/s1/temp")))

    assert [log.scope["scope_key"] for log in app.logs] == ["sensors/s1/temp"]
    (log,) = app.logs
    assert log.scope["subscription"] == "sensors/+/temp"
    assert messages(log)[0]["qos"] == 1  # route_qos


async def test_subscribe_routes_off_ignores_the_routes(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    app = recording_app()
    app.topic_filters = lambda: ["sensors/#"]
    gateway = make_gateway(
        app, mosquitto.url, subscribe_routes=False, subscriptions=[{"topic": "other/#"}]
    )
    await run_gateway(gateway)
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("sensors/s1", b"x", qos=1)
        await probe.publish("other/o1", b"y", qos=1)
        await app.wait_for(lambda: any(messages(log) for log in app.logs))
    assert [log.scope["scope_key"] for log in app.logs] == ["other/o1"]


async def test_yaml_subscriptions_carry_their_qos(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    app = recording_app()
    subscriptions = [{"topic": "q/one", "qos": 1}, {"topic": "q/zero", "qos": 0}]
    await run_gateway(make_gateway(app, mosquitto.url, subscriptions=subscriptions))
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("q/one", b"1", qos=2)
        await probe.publish("q/zero", b"0", qos=2)
        await app.wait_for(lambda: sum(len(messages(log)) for log in app.logs) == 2)
    assert messages(app.by_key("q/one")[0])[0]["qos"] == 1
    assert messages(app.by_key("q/zero")[0])[0]["qos"] == 0


async def test_shared_subscription_delivers(mosquitto, mqtt_client, recording_app, run_gateway):
    app = recording_app()
    subscriptions = [{"topic": "$share/workers/jobs/#", "qos": 1}]
    await run_gateway(make_gateway(app, mosquitto.url, subscriptions=subscriptions))
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("jobs/42", b"work", qos=1)
        await app.wait_for(lambda: any(messages(log) for log in app.logs))
    (log,) = app.logs
    assert log.scope["topic"] == "jobs/42"
    assert log.scope["subscription"] == "$share/workers/jobs/#"
    assert messages(log)[0]["payload"] == b"work"


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_overlapping_filters_deliver_once(
    protocol, mosquitto, mqtt_client, recording_app, run_gateway
):
    # Mosquitto sends an MQTT 5 client one copy per matching subscription.
    app = recording_app()
    app.topic_filters = lambda: ["a/+/c"]
    gateway = make_gateway(
        app, mosquitto.url, protocol=protocol, subscriptions=[{"topic": "a/#", "qos": 1}]
    )
    await run_gateway(gateway)
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("a/b/c", b"once", qos=1)
        await probe.publish("a/end", b"after", qos=1)
        await app.wait_for(lambda: bool(app.by_key("a/end")) and messages(app.by_key("a/end")[0]))
    (log,) = app.by_key("a/b/c")
    assert [event["payload"] for event in messages(log)] == [b"once"]
    assert log.scope["subscription"] == "a/#"  # the first filter that matches


async def test_publish_qos1_retained_reaches_outside_clients(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    async def reply(log, event):
        if event["type"] == "mqtt.message":
            await log.send(
                {
                    "type": "mqtt.publish",
                    "topic": "out/state",
                    "payload": "on",  # str is encoded as UTF-8
                    "qos": 1,
                    "retain": True,
                }
            )

    app = recording_app(on_event=reply)
    await run_gateway(make_gateway(app, mosquitto.url, subscriptions=[{"topic": "cmd/#"}]))
    async with mqtt_client(mosquitto.url) as probe:
        await probe.subscribe("out/#", qos=1)
        await probe.publish("cmd/switch", b"go", qos=1)
        live = await probe.next()
    assert (live.topic.value, live.payload, live.qos) == ("out/state", b"on", 1)
    assert app.logs[0].errors == []
    async with mqtt_client(mosquitto.url) as late:
        await late.subscribe("out/#", qos=1)
        retained = await late.next()
    assert (retained.payload, retained.retain) == (b"on", True)


async def test_mqtt5_properties_round_trip(mosquitto, mqtt_client, recording_app, run_gateway):
    async def respond(log, event):
        if event["type"] == "mqtt.message":
            properties = event["properties"]
            await log.send(
                {
                    "type": "mqtt.publish",
                    "topic": properties["response_topic"],
                    "payload": b'{"ok": true}',
                    "qos": 1,
                    "properties": {
                        "correlation_data": properties["correlation_data"],
                        "content_type": "application/json",
                        "user_properties": [("served-by", "gateway")],
                        "message_expiry_interval": 60,
                    },
                }
            )

    app = recording_app(on_event=respond)
    gateway = make_gateway(app, mosquitto.url, protocol=5, subscriptions=[{"topic": "req/#"}])
    await run_gateway(gateway)
    async with mqtt_client(mosquitto.url, protocol=5) as probe:
        await probe.subscribe("reply/#", qos=1)
        await probe.publish(
            "req/1",
            b"{}",
            qos=1,
            properties={
                "ResponseTopic": "reply/1",
                "CorrelationData": b"\x01\x02",
                "ContentType": "application/json",
                "UserProperty": [("tenant", "t1")],
            },
        )
        reply = await probe.next()

    incoming = messages(app.logs[0])[0]["properties"]
    assert incoming["response_topic"] == "reply/1"
    assert incoming["correlation_data"] == b"\x01\x02"
    assert incoming["content_type"] == "application/json"
    assert incoming["user_properties"] == [("tenant", "t1")]
    assert app.logs[0].errors == []
    assert reply.topic.value == "reply/1"
    assert reply.properties.CorrelationData == b"\x01\x02"
    assert reply.properties.ContentType == "application/json"
    assert ("served-by", "gateway") in reply.properties.UserProperty


async def test_mqtt5_string_properties_keep_u_feff(
    mosquitto, mqtt_client, recording_app, run_gateway, caplog
):
    """MQTT 5.0 section 1.5.4 [MQTT-1.5.4-3]: U+FEFF in a string "MUST NOT be skipped over or
    stripped off by a packet receiver". paho 2.2 refuses it as a Malformed Packet and drops
    the connection; Mosquitto accepts it and sends the unacknowledged message again on every
    reconnect, so one such publish used to cut the gateway off its broker for good."""
    bom = "\ufeff"
    app = recording_app()
    gateway = make_gateway(
        app, mosquitto.url, protocol=5, route_qos=1, subscriptions=[{"topic": "req/#"}]
    )
    await run_gateway(gateway)
    caplog.set_level(logging.INFO, logger="gateways.mqtt")
    async with mqtt_client(mosquitto.url, protocol=5) as probe:
        await probe.publish(
            "req/1",
            b"{}",
            qos=1,
            properties={
                "ResponseTopic": f"{bom}reply/1",
                "ContentType": f"text/plain{bom}",
                "UserProperty": [(bom, f"a{bom}b")],
            },
        )
        await probe.publish("req/2", b"after", qos=1)

        def topics() -> list[str]:
            return [message["topic"] for log in app.logs for message in messages(log)]

        await app.wait_for(lambda: "req/2" in topics())

    received = [message for log in app.logs for message in messages(log)]
    first = next(message for message in received if message["topic"] == "req/1")
    assert first["properties"]["response_topic"] == f"{bom}reply/1"
    assert first["properties"]["content_type"] == f"text/plain{bom}"
    assert first["properties"]["user_properties"] == [(bom, f"a{bom}b")]
    assert topics().count("req/1") == 1
    lost = [r.getMessage() for r in caplog.records if "lost its connection" in r.getMessage()]
    assert lost == []


async def test_a_scope_subscription_delivers_to_that_scope(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    done: list[str] = []

    async def control(log, event):
        if event["type"] != "mqtt.message":
            return
        device = event["topic"].split("/")[1]
        if event["payload"] == b"sub":
            await log.send({"type": "mqtt.subscribe", "topic": f"private/{device}/#", "qos": 1})
        elif event["payload"] == b"unsub":
            await log.send({"type": "mqtt.unsubscribe", "topic": f"private/{device}/#"})
        done.append(f"{device}:{event['payload'].decode()}")

    app = recording_app(on_event=control)
    await run_gateway(make_gateway(app, mosquitto.url, subscriptions=[{"topic": "ctl/#"}]))
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("ctl/d1", b"sub", qos=1)
        await probe.publish("ctl/d2", b"sub", qos=1)
        await app.wait_for(lambda: {"d1:sub", "d2:sub"} <= set(done))
        await probe.publish("private/d1/x", b"for d1", qos=1)
        await app.wait_for(lambda: "d1:for d1" in done)
        await probe.publish("ctl/d1", b"unsub", qos=1)
        await app.wait_for(lambda: "d1:unsub" in done)
        await probe.publish("private/d1/y", b"after unsub", qos=1)
        await probe.publish("private/d2/z", b"for d2", qos=1)
        await app.wait_for(lambda: "d2:for d2" in done)

    (d1,) = app.by_key("ctl/d1")
    (d2,) = app.by_key("ctl/d2")
    assert [(e["topic"], e["payload"]) for e in messages(d1)] == [
        ("ctl/d1", b"sub"),
        ("private/d1/x", b"for d1"),
        ("ctl/d1", b"unsub"),
    ]
    assert [e["topic"] for e in messages(d2)] == ["ctl/d2", "private/d2/z"]
    assert messages(d1)[1]["qos"] == 1
    assert not app.by_key("private/d1/x")  # no scope of its own: it went to ctl/d1
    assert d1.errors == d2.errors == []


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_overlapping_scope_and_gateway_filters_deliver_once_each(
    protocol, mosquitto, mqtt_client, recording_app, run_gateway
):
    subscribed: list[str] = []

    async def watch(log, event):
        if event["type"] == "mqtt.message" and event["payload"] == b"watch":
            await log.send({"type": "mqtt.subscribe", "topic": "ctl/+/alert", "qos": 1})
            subscribed.append(log.scope["scope_key"])

    app = recording_app(on_event=watch)
    gateway = make_gateway(
        app, mosquitto.url, protocol=protocol, subscriptions=[{"topic": "ctl/#"}]
    )
    await run_gateway(gateway)
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("ctl/watcher", b"watch", qos=1)
        await app.wait_for(lambda: subscribed == ["ctl/watcher"])
        await probe.publish("ctl/d1/alert", b"fire", qos=1)
        await probe.publish("ctl/end", b"", qos=1)
        await app.wait_for(
            lambda: bool(app.by_key("ctl/end")) and messages(app.by_key("ctl/end")[0])
        )

    (watcher,) = app.by_key("ctl/watcher")
    (d1,) = app.by_key("ctl/d1/alert")
    assert [e["payload"] for e in messages(d1)] == [b"fire"]
    assert [e["topic"] for e in messages(watcher)] == ["ctl/watcher", "ctl/d1/alert"]


async def test_scope_subscriptions_end_with_the_scope(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    # Two scopes share one broker subscription; it goes when the last of them ends.
    async def control(log, event):
        if event["type"] == "mqtt.message" and event["payload"] == b"sub":
            await log.send({"type": "mqtt.subscribe", "topic": "shared/feed"})
        elif event["type"] == "mqtt.message" and event["payload"] == b"close":
            await log.send({"type": "mqtt.close"})

    app = recording_app(on_event=control)
    gateway = await run_gateway(
        make_gateway(app, mosquitto.url, subscriptions=[{"topic": "ctl/#", "qos": 1}])
    )
    subscribed = f"{gateway.client_id} 0 shared/feed"
    unsubscribed = f"{gateway.client_id} shared/feed"

    def ended(key):
        return app.by_key(key) and app.by_key(key)[0].types[-1] == "mqtt.disconnect"

    async with mqtt_client(mosquitto.url) as probe:
        for device in ("d1", "d2"):
            await probe.publish(f"ctl/{device}", b"sub", qos=1)
        await app.wait_for(lambda: len(app.logs) == 2 and all(len(x.events) == 2 for x in app.logs))
        await mosquitto.wait_log(subscribed)
        await probe.publish("ctl/d1", b"close", qos=1)
        await app.wait_for(lambda: ended("ctl/d1"))
        await probe.publish("shared/feed", b"still d2", qos=1)
        await app.wait_for(lambda: len(messages(app.by_key("ctl/d2")[0])) == 2)
        assert unsubscribed not in mosquitto.log_lines()
        await probe.publish("ctl/d2", b"close", qos=1)
        await app.wait_for(lambda: ended("ctl/d2"))
        await mosquitto.wait_log(unsubscribed)

    assert mosquitto.log_lines().count(subscribed) == 1
    assert app.by_key("ctl/d1")[0].events[-1] == {"type": "mqtt.disconnect", "reason": "closed"}
    assert len(gateway.instances) == 0


async def test_unknown_event_raises_in_the_application(
    mosquitto, mqtt_client, recording_app, run_gateway
):
    async def bogus(log, event):
        if event["type"] == "mqtt.message":
            await log.send({"type": "mqtt.bogus", "topic": "x"})

    app = recording_app(on_event=bogus)
    await run_gateway(make_gateway(app, mosquitto.url, subscriptions=[{"topic": "t"}]))
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("t", b"1", qos=1)
        await probe.publish("t", b"2", qos=1)
        await app.wait_for(lambda: bool(app.logs) and len(app.logs[0].errors) == 2)
    (log,) = app.logs  # the instance lives on
    error = log.errors[0]
    assert isinstance(error, GatewayError)
    assert "'mqtt.bogus'" in str(error)
    assert "mqtt.publish" in str(error)
    assert "mqtt.subscribe" in str(error)


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ({"type": "mqtt.publish", "topic": "a/+", "payload": b""}, "wildcard"),
        ({"type": "mqtt.publish", "topic": "a", "payload": b"x" * 101}, "max_payload"),
        ({"type": "mqtt.publish", "topic": "a", "payload": 12}, "bytes or str"),
        ({"type": "mqtt.publish", "topic": "a", "payload": b"", "qos": 3}, "qos"),
        (
            {"type": "mqtt.publish", "topic": "a", "payload": b"", "properties": {"x": 1}},
            "protocol '5'",
        ),
        ({"type": "mqtt.subscribe", "topic": "a/#/b"}, "'#' must be alone"),
        ({"type": "mqtt.subscribe", "topic": "$share/g"}, "group name and a filter"),
    ],
)
async def test_invalid_outgoing_events_raise(
    event, words, mosquitto, mqtt_client, recording_app, run_gateway
):
    async def send_it(log, incoming):
        if incoming["type"] == "mqtt.message":
            await log.send(event)

    app = recording_app(on_event=send_it)
    gateway = make_gateway(app, mosquitto.url, subscriptions=[{"topic": "t"}], max_payload=100)
    await run_gateway(gateway)
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("t", b"go", qos=1)
        await app.wait_for(lambda: bool(app.logs and app.logs[0].errors))
    (error,) = app.logs[0].errors
    assert isinstance(error, GatewayError)
    assert words in str(error)


async def test_oversized_payload_dropped_and_counted(
    mosquitto, mqtt_client, recording_app, run_gateway, caplog
):
    app = recording_app()
    gateway = make_gateway(
        app, mosquitto.url, name="bounded", subscriptions=[{"topic": "t/#"}], max_payload=1024
    )
    labels = {"gateway": "bounded", "reason": "oversized"}
    before = REGISTRY.get_sample_value("asgi_gateway_mqtt_messages_dropped_total", labels) or 0
    await run_gateway(gateway)
    with caplog.at_level(logging.WARNING, logger="gateways.mqtt"):
        async with mqtt_client(mosquitto.url) as probe:
            await probe.publish("t/big", b"x" * 1025, qos=1)
            await probe.publish("t/small", b"x" * 1024, qos=1)
            await app.wait_for(lambda: any(messages(log) for log in app.logs))
    assert [log.scope["scope_key"] for log in app.logs] == ["t/small"]
    after = REGISTRY.get_sample_value("asgi_gateway_mqtt_messages_dropped_total", labels)
    assert after == before + 1
    assert any("'bounded'" in r.message and "'t/big'" in r.message for r in caplog.records)


async def test_no_subscription_warns_at_start(mosquitto, recording_app, run_gateway, caplog):
    with caplog.at_level(logging.WARNING, logger="gateways.mqtt"):
        await run_gateway(make_gateway(recording_app(), mosquitto.url, name="idle"))
    assert any("'idle' subscribes to nothing" in r.message for r in caplog.records)


async def test_invalid_route_filter_fails_start(mosquitto, recording_app, run_gateway):
    app = recording_app()
    app.topic_filters = lambda: ["bad/#/filter"]
    with pytest.raises(GatewayError, match=r"'bad/#/filter'"):
        await run_gateway(make_gateway(app, mosquitto.url))
