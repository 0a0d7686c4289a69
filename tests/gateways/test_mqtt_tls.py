"""The MQTT gateway over TLS (``mqtts://``) to a Mosquitto TLS listener with a test CA."""

from __future__ import annotations

import asyncio
import gc
import logging
import shutil
import socket
import ssl
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateways.mqtt import MqttGateway, MqttGatewayOptions
from gateways.mqtt.client import ClosingSSLSocket, tls_context

pytestmark = pytest.mark.mosquitto


def openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("openssl is not installed (apt-get install -y openssl)")
    subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> None:
    """ca.pem (a self-signed CA), server.pem/server.key for 127.0.0.1, signed by it."""
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=asgi-gateway test CA", cwd=directory)  # fmt: skip
    openssl("req", *curve, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
            cwd=directory)  # fmt: skip


@dataclass
class TlsBroker:
    broker: Any  # conftest.Mosquitto: its plain listener is broker.url
    tls_port: int
    ca_file: str


@pytest.fixture
def tls_mosquitto(tmp_path: Path, free_port, make_mosquitto) -> TlsBroker:
    """Mosquitto with a plain listener (``broker.url``) and a TLS one (``tls_port``)."""
    make_certificates(tmp_path)
    tls_port = free_port()
    broker = make_mosquitto(
        # Run as root, Mosquitto switches to its own user, who can't enter pytest's tmp
        # directories; "user" has no effect when the tests don't run as root.
        "user root\n"
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {tmp_path / 'ca.pem'}\n"
        f"certfile {tmp_path / 'server.pem'}\n"
        f"keyfile {tmp_path / 'server.key'}\n"
    )
    return TlsBroker(broker, tls_port, str(tmp_path / "ca.pem"))


def messages(log: Any) -> list[dict[str, Any]]:
    return [event for event in log.events if event["type"] == "mqtt.message"]


async def test_mqtts_with_the_ca_file(tls_mosquitto, mqtt_client, recording_app, run_gateway):
    app = recording_app()
    options = MqttGatewayOptions(
        broker=f"mqtts://127.0.0.1:{tls_mosquitto.tls_port}",
        tls={"ca_file": tls_mosquitto.ca_file},
        subscriptions=[{"topic": "secure/#"}],
    )
    gateway = await run_gateway(MqttGateway("tls", app, options))
    assert gateway.connected
    async with mqtt_client(tls_mosquitto.broker.url) as probe:
        await probe.publish("secure/a", b"over tls", qos=1)
        await app.wait_for(lambda: any(messages(log) for log in app.logs))
    assert messages(app.logs[0])[0]["payload"] == b"over tls"


async def test_mqtts_refuses_an_unknown_certificate_authority(
    tls_mosquitto, recording_app, run_gateway, caplog
):
    options = MqttGatewayOptions(
        broker=f"mqtts://127.0.0.1:{tls_mosquitto.tls_port}",
        subscriptions=[{"topic": "secure/#"}],
        reconnect={"initial": 5, "maximum": 5},
    )
    with caplog.at_level(logging.WARNING, logger="gateways.mqtt"):
        gateway = await run_gateway(MqttGateway("tls", recording_app(), options))
    assert not gateway.connected
    assert any("CERTIFICATE_VERIFY_FAILED" in r.getMessage() for r in caplog.records)
    async with asyncio.timeout(10):
        await gateway.stop()


def unclosed_at_collection() -> list[str]:
    """What the garbage collector finds left open now, warnings as errors: each unclosed
    socket it finalises raises its ResourceWarning, which ``__del__`` cannot pass on."""
    found: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: found.append(
        f"{unraisable.exc_value!r} in {unraisable.object!r}"
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            gc.collect()
    finally:
        sys.unraisablehook = hook
    return found


async def test_a_refused_certificate_leaves_no_socket_for_the_garbage_collector(
    tls_mosquitto, recording_app, run_gateway, caplog
):
    """paho-mqtt 2.x leaves its SSL socket open when the handshake fails; the gateway's TLS
    context closes it (``ClosingSSLSocket``), so nothing is left for a later collection."""
    options = MqttGatewayOptions(
        broker=f"mqtts://127.0.0.1:{tls_mosquitto.tls_port}",
        subscriptions=[{"topic": "secure/#"}],
        reconnect={"initial": 5, "maximum": 5},
    )
    unclosed_at_collection()  # what earlier tests left is not this test's to judge
    with caplog.at_level(logging.WARNING, logger="gateways.mqtt"):
        gateway = await run_gateway(MqttGateway("tls", recording_app(), options))
    assert any("CERTIFICATE_VERIFY_FAILED" in r.getMessage() for r in caplog.records)
    async with asyncio.timeout(10):
        await gateway.stop()
    assert unclosed_at_collection() == []


def test_a_failed_handshake_closes_its_socket(tls_mosquitto):
    context = tls_context("tls", MqttGatewayOptions(broker="mqtts://127.0.0.1"))
    assert context.sslsocket_class is ClosingSSLSocket
    raw = socket.create_connection(("127.0.0.1", tls_mosquitto.tls_port), timeout=5)
    tls = context.wrap_socket(raw, server_hostname="127.0.0.1", do_handshake_on_connect=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls.do_handshake()
    assert tls.fileno() == -1  # closed


async def test_mqtts_insecure_skips_the_check(tls_mosquitto, recording_app, run_gateway):
    options = MqttGatewayOptions(
        broker=f"mqtts://127.0.0.1:{tls_mosquitto.tls_port}",
        tls={"insecure": True},
        subscriptions=[{"topic": "secure/#"}],
    )
    gateway = await run_gateway(MqttGateway("tls", recording_app(), options))
    assert gateway.connected
