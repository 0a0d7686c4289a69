"""The ASGI lifespan protocol in the daemon (gateways.daemon.lifespan): the application's
startup runs before any gateway serves and its shutdown after they stopped; a failed
startup stops the daemon with the application's message; an application without a
lifespan part runs as before (``lifespan: auto``) or fails the start (``lifespan: on``)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import Daemon, client, next_message

pytestmark = pytest.mark.timeout(60)


def config(tmp_path: Path, app: str = "lifespan_app:application", lifespan: str = "") -> Path:
    path = tmp_path / "lifespan.yaml"
    path.write_text(
        f"application: {app}\n"
        f"{lifespan}"
        "logging:\n"
        "  level: INFO\n"
        "gateways:\n"
        "  devices:\n"
        "    type: mqtt\n"
        "    broker: ${MQTT_URL}\n"
        "    subscriptions:\n"  # for an application that lists no topic filters
        "      - {topic: ping, qos: 1}\n"
    )
    return path


async def ping(mosquitto: Any) -> bytes:
    """Publish ``ping`` until the daemon answers on ``pong``; its answer."""
    async with client(mosquitto, "pong") as c:
        async with asyncio.timeout(20):
            while True:
                await c.publish("ping", b"", qos=1)
                try:
                    reply = await next_message(c, "pong", timeout=0.5)
                except TimeoutError:
                    continue
                assert isinstance(reply.payload, bytes)
                return reply.payload


async def test_startup_runs_before_the_gateways_serve_and_shutdown_after_they_stopped(
    mosquitto: Any, tmp_path: Path
) -> None:
    log = tmp_path / "lifespan.log"
    daemon = Daemon(config(tmp_path), {"MQTT_URL": mosquitto.url, "LIFESPAN_LOG": str(log)})
    try:
        assert await ping(mosquitto) == b"pong"  # the startup had run
        assert log.read_text() == "startup layer=True\n"
        code = await asyncio.to_thread(daemon.stop, signal.SIGTERM)
    finally:
        daemon.stop(signal.SIGKILL)
    assert code == 0, daemon.output
    assert log.read_text() == "startup layer=True\nshutdown\n"


async def test_a_failed_startup_stops_the_daemon_with_the_applications_message(
    mosquitto: Any, tmp_path: Path
) -> None:
    log = tmp_path / "lifespan.log"
    env = {"MQTT_URL": mosquitto.url, "LIFESPAN_LOG": str(log), "LIFESPAN_FAIL": "1"}
    daemon = Daemon(config(tmp_path), env)
    code = await asyncio.to_thread(daemon.stop, None, 30)
    assert code == 1, daemon.output
    assert "the application's lifespan startup failed: no database" in daemon.output
    assert "Gateway 'devices' (mqtt) started" not in daemon.output
    assert "Traceback" not in daemon.output


async def test_an_application_without_lifespan_runs_with_auto_and_fails_the_start_with_on(
    mosquitto: Any, tmp_path: Path
) -> None:
    app = "lifespan_app:without_lifespan"
    env = {"MQTT_URL": mosquitto.url, "LIFESPAN_LOG": str(tmp_path / "unused.log")}
    daemon = Daemon(config(tmp_path, app), env)
    try:
        assert await ping(mosquitto) == b"not started"
        code = await asyncio.to_thread(daemon.stop, signal.SIGTERM)
    finally:
        daemon.stop(signal.SIGKILL)
    assert code == 0, daemon.output
    assert "does not support the ASGI lifespan protocol" in daemon.output
    strict = Daemon(config(tmp_path, app, "lifespan: on\n"), env)
    code = await asyncio.to_thread(strict.stop, None, 30)
    assert code == 1, strict.output
    assert "does not support the ASGI lifespan protocol (lifespan: on)" in strict.output
    assert "No application for scope type 'lifespan'" in strict.output


async def test_a_loop_that_skips_lifespan_startup_runs_at_once_without_lifespan(
    mosquitto: Any, tmp_path: Path
) -> None:
    env = {"MQTT_URL": mosquitto.url, "LIFESPAN_LOG": str(tmp_path / "unused.log")}
    daemon = Daemon(config(tmp_path, "lifespan_app:looping"), env)
    try:
        assert await ping(mosquitto) == b"not started"
        code = await asyncio.to_thread(daemon.stop, signal.SIGTERM)
    finally:
        daemon.stop(signal.SIGKILL)
    assert code == 0, daemon.output
    assert (
        "does not support the ASGI lifespan protocol: it did not answer lifespan.startup"
        in daemon.output
    )


async def test_a_fastapi_lifespan_state_reaches_its_requests_through_type_http(
    tmp_path: Path,
) -> None:
    import httpx

    from gateways.testing import free_port

    port = free_port()
    path = tmp_path / "web.yaml"
    path.write_text(
        "application: lifespan_fastapi:application\n"
        "gateways:\n"
        "  web:\n"
        "    type: http\n"
        f"    port: {port}\n"
    )
    log = tmp_path / "lifespan.log"
    daemon = Daemon(path, {"LIFESPAN_LOG": str(log)})
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(20):
            while True:
                try:
                    answer = await http.get(f"http://127.0.0.1:{port}/greeting")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"greeting": "hello from the lifespan"}
        code = await asyncio.to_thread(daemon.stop, signal.SIGTERM)
    finally:
        daemon.stop(signal.SIGKILL)
    assert code == 0, daemon.output
    assert log.read_text() == "shut down\n"
