"""The monitoring server end to end: the daemon (``python -m gateways run FILE``) with a
``monitoring:`` section, against a real Mosquitto that goes away and comes back; and the
server and the counters in process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from daemon_helpers import ROOT, Daemon, client, until_reply
from prometheus_client.parser import text_string_to_metric_families

from gateways.base import GatewayError
from gateways.daemon.monitoring import MonitoringServer
from gateways.metrics import HANDLING_BUCKETS, GatewayStats
from gateways.testing import RedisServer
from layer.state import StateError, StoreUnavailable

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def get(url: str) -> tuple[int, str]:
    """``GET url``: the status and the body (5 s bound)."""
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        return response.status, await response.text()


async def until_status(url: str, status: int, timeout: float = 20) -> str:
    """Poll ``url`` until it answers ``status``; its body then."""
    last: object = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    got, body = await get(url)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = exc
                else:
                    if got == status:
                        return body
                    last = (got, body)
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"{url} did not answer {status} within {timeout} s; last: {last!r}")


async def metrics(base: str) -> Samples:
    status, body = await get(f"{base}/metrics")
    assert status == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {name}{labels} in /metrics"
    return samples[key]


@pytest.fixture
def monitored(
    run_daemon: Any, free_port: Callable[[], int]
) -> Callable[[Path], tuple[Daemon, str]]:
    """``monitored(config)``: the daemon on ``config`` with its monitoring server on a free
    port (``MONITORING_PORT``); the daemon and the server's base URL."""

    def start(config: Path) -> tuple[Daemon, str]:
        port = free_port()
        return run_daemon(config, MONITORING_PORT=str(port)), f"http://127.0.0.1:{port}"

    return start


async def test_the_echo_daemon_serves_metrics_health_and_readiness(
    mosquitto: Any, monitored: Any
) -> None:
    daemon, base = monitored(ROOT / "examples" / "echo_monitoring.yaml")
    assert json.loads(await until_status(f"{base}/healthz", 200)) == {"alive": True}
    ready = json.loads(await until_status(f"{base}/readyz", 200))
    assert ready == {"ready": True, "not_connected": []}
    async with client(mosquitto, "echo/+/reply") as c:
        await until_reply(c, "echo/alice", b"hello", "echo/alice/reply")
        for n in range(5):
            await until_reply(c, f"echo/d{n}", b"hi", f"echo/d{n}/reply")

    samples = await metrics(base)
    assert value(samples, "asgi_gateway_connected", gateway="mqtt") == 1
    received = value(samples, "asgi_gateway_events_received_total", gateway="mqtt")
    sent = value(samples, "asgi_gateway_messages_sent_total", gateway="mqtt")
    assert received >= 6
    assert sent >= 6
    assert value(samples, "asgi_gateway_scopes_opened_total", gateway="mqtt") >= 6
    assert value(samples, "asgi_gateway_scopes_live", gateway="mqtt") >= 6
    # Every event received (and each scope's connect event) was handled once the consumer
    # asked for the next one.
    handled = value(samples, "asgi_gateway_event_handling_seconds_count", gateway="mqtt")
    assert handled >= received
    assert value(samples, "asgi_gateway_event_handling_seconds_sum", gateway="mqtt") > 0
    inf = value(samples, "asgi_gateway_event_handling_seconds_bucket", gateway="mqtt", le="+Inf")
    assert inf == handled

    mosquitto.stop()
    body = json.loads(await until_status(f"{base}/readyz", 503))
    assert body == {"ready": False, "not_connected": ["mqtt"]}
    assert value(await metrics(base), "asgi_gateway_connected", gateway="mqtt") == 0
    status, _ = await get(f"{base}/healthz")
    assert status == 200

    mosquitto.start()
    assert json.loads(await until_status(f"{base}/readyz", 200, timeout=30))["ready"] is True
    assert daemon.stop() == 0
    assert "Monitoring at http://127.0.0.1:" in daemon.output


async def test_the_thermostat_names_only_the_gateway_that_lost_its_transport(
    mosquitto: Any, monitored: Any
) -> None:
    _, base = monitored(ROOT / "examples" / "thermostat" / "monitoring.yaml")
    await until_status(f"{base}/readyz", 200)
    async with client(mosquitto, "devices/+/state/reply") as c:
        await until_reply(c, "devices/kitchen/get", b"", "devices/kitchen/state/reply")
        await c.publish("devices/kitchen/telemetry", b'{"temperature": 21.5}', qos=1)
        await until_reply(c, "devices/hall/get", b"", "devices/hall/state/reply")
    samples = await metrics(base)
    assert value(samples, "asgi_gateway_events_received_total", gateway="devices") >= 3
    assert value(samples, "asgi_gateway_messages_sent_total", gateway="devices") >= 2
    assert value(samples, "asgi_gateway_connected", gateway="devices") == 1
    assert value(samples, "asgi_gateway_connected", gateway="chat") == 1
    # The console's pinned alerts conversation is a live scope of its own.
    assert value(samples, "asgi_gateway_scopes_live", gateway="chat") >= 1

    mosquitto.kill()  # as a crash would
    body = json.loads(await until_status(f"{base}/readyz", 503))
    assert body["not_connected"] == ["devices"]
    mosquitto.start()
    await until_status(f"{base}/readyz", 200, timeout=30)


# -- in process -----------------------------------------------------------------------------


class Transport:
    """What ``MonitoringServer`` reads of a gateway: its name and whether it is connected."""

    def __init__(self, name: str, connected: bool) -> None:
        self.name = name
        self.connected = connected


async def test_readyz_follows_the_gateways_connected_property() -> None:
    gateways = [Transport("a", True), Transport("b", True)]
    server = MonitoringServer("127.0.0.1", 0, lambda: gateways)  # type: ignore[arg-type,return-value]
    await server.start()
    try:
        assert server.port != 0
        assert (await get(f"{server.url}/readyz"))[0] == 200
        gateways[1].connected = False
        status, body = await get(f"{server.url}/readyz")
        assert (status, json.loads(body)) == (503, {"ready": False, "not_connected": ["b"]})
        status, _ = await get(f"{server.url}/nothing")
        assert status == 404
        # A port in use is a GatewayError naming it.
        other = MonitoringServer("127.0.0.1", server.port, list)
        with pytest.raises(GatewayError, match=f"cannot listen on 127.0.0.1:{server.port}"):
            await other.start()
    finally:
        await server.stop()


def test_handling_times_fall_in_inclusive_buckets() -> None:
    stats = GatewayStats("test-buckets")
    stats.handled(HANDLING_BUCKETS[0])
    stats.handled(HANDLING_BUCKETS[-1] * 2)
    stats.handled(0.0)
    assert stats.handling_counts[0] == 2
    assert stats.handling_counts[-1] == 1
    assert sum(stats.handling_counts) == 3
    assert stats.handling_sum == pytest.approx(HANDLING_BUCKETS[0] + HANDLING_BUCKETS[-1] * 2)


async def test_slack_is_connected_while_its_socket_is_open(
    slack_server: Any, slack_options: Any, recording_app: Any
) -> None:
    from gateways.slack import SlackGateway

    gateway = SlackGateway("slack", recording_app(), slack_options())
    assert not gateway.connected
    async with asyncio.timeout(10):
        await gateway.start()
    try:
        assert gateway.connected
    finally:
        async with asyncio.timeout(10):
            await gateway.stop()
    assert not gateway.connected


class Store:
    """What ``MonitoringServer`` reads of a state store: ``ping()``, which answers, raises
    ``problem`` or never answers (``hang``)."""

    def __init__(self) -> None:
        self.problem: Exception | None = None
        self.hang = False
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.problem is not None:
            raise self.problem


async def test_readyz_names_a_state_store_that_does_not_answer() -> None:
    store = Store()
    gateways = [Transport("devices", True)]
    server = MonitoringServer(
        "127.0.0.1",
        0,
        lambda: gateways,  # type: ignore[arg-type,return-value]
        state_store=lambda: store,  # type: ignore[arg-type,return-value]
        store_backend="redis",
        store_timeout=0.2,
    )
    await server.start()
    try:
        status, body = await get(f"{server.url}/readyz")
        assert (status, json.loads(body)) == (200, {"ready": True, "not_connected": []})
        assert value(await metrics(server.url), "asgi_gateway_state_store_up", backend="redis") == 1

        # Refused: the reason is shown, without the password of a URL in it.
        store.problem = StoreUnavailable(
            "redis state store redis://:hunter2@10.0.0.1:6379/0: Connection refused"
        )
        status, body = await get(f"{server.url}/readyz")
        assert status == 503
        assert json.loads(body) == {
            "ready": False,
            "not_connected": [
                "state store (redis): unavailable: "
                "redis state store redis://:***@10.0.0.1:6379/0: Connection refused"
            ],
        }
        assert "hunter2" not in body
        assert value(await metrics(server.url), "asgi_gateway_state_store_up", backend="redis") == 0

        # No answer at all (a server stopped with SIGSTOP): unavailable after store_timeout.
        store.problem, store.hang = None, True
        gateways[0].connected = False
        status, body = await get(f"{server.url}/readyz")
        assert (status, json.loads(body)) == (
            503,
            {
                "ready": False,
                "not_connected": [
                    "devices",
                    "state store (redis): unavailable: no answer within 0.2 s",
                ],
            },
        )

        # Any other error of the store: not ready either.
        store.hang, store.problem = False, StateError("the file is damaged")
        gateways[0].connected = True
        status, body = await get(f"{server.url}/readyz")
        assert status == 503
        assert json.loads(body)["not_connected"] == [
            "state store (redis): unavailable: StateError: the file is damaged"
        ]

        store.problem = None
        status, body = await get(f"{server.url}/readyz")
        assert (status, json.loads(body)) == (200, {"ready": True, "not_connected": []})
        assert value(await metrics(server.url), "asgi_gateway_state_store_up", backend="redis") == 1
    finally:
        await server.stop()


async def test_readyz_pings_a_real_redis_store_that_goes_away(redis_server: RedisServer) -> None:
    from layer.state import RedisStateStore

    store = RedisStateStore([redis_server.url], timeout=0.5)
    server = MonitoringServer(
        "127.0.0.1",
        0,
        list,
        state_store=lambda: store,
        store_backend="redis",
        store_timeout=1,
    )
    await server.start()
    try:
        assert (await get(f"{server.url}/readyz"))[0] == 200
        redis_server.pause()  # SIGSTOP: connected, never answering
        status, body = await get(f"{server.url}/readyz")
        assert status == 503
        (problem,) = json.loads(body)["not_connected"]
        assert problem.startswith("state store (redis): unavailable: ")
        redis_server.kill()  # refused
        status, body = await get(f"{server.url}/readyz")
        assert status == 503
        (problem,) = json.loads(body)["not_connected"]
        assert problem.startswith("state store (redis): unavailable: redis state store ")
        assert redis_server.url in problem
        await asyncio.to_thread(redis_server.start)
        await until_status(f"{server.url}/readyz", 200, timeout=10)
    finally:
        await server.stop()
        await store.close()


async def test_readyz_without_a_state_store_checks_none() -> None:
    server = MonitoringServer("127.0.0.1", 0, list, state_store=lambda: None)
    await server.start()
    try:
        status, body = await get(f"{server.url}/readyz")
        assert (status, json.loads(body)) == (200, {"ready": True, "not_connected": []})
    finally:
        await server.stop()
    with pytest.raises(ValueError, match="store_timeout"):
        MonitoringServer("127.0.0.1", 0, list, store_timeout=0)
