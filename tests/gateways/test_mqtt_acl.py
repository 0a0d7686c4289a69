"""The MQTT gateway against a Mosquitto that controls access: passwords, client
certificates, an ACL file and the dynamic security plugin, on MQTT 3.1.1 and 5.

What Mosquitto 2.0 really answers (checked here): on MQTT 5 a QoS 1 PUBLISH it forbids gets
PUBACK 0x87 Not authorized, which the application's ``publish`` raises; on MQTT 3.1.1 it is
acknowledged and dropped, which nobody can see. Its ``acl_file`` grants every SUBSCRIBE and
withholds the messages instead; the dynamic security plugin refuses a SUBSCRIBE with SUBACK
0x87 (MQTT 5) or 0x80 (MQTT 3.1.1), a start-up error naming the filter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from consumers.mqtt import MqttConsumer
from gateways.base import GatewayError
from gateways.mqtt import MqttGateway, MqttGatewayOptions
from gateways.mqtt.refusals import BrokerRefused
from gateways.testing.mosquitto import BrokerTls, Mosquitto, dynsec_client

pytestmark = pytest.mark.mosquitto

PROTOCOLS = pytest.mark.parametrize("protocol", ["3.1.1", "5"])
FAST = {"initial": 0.05, "maximum": 0.5}

#: The gateway logs in as "gateway"; the probe (an outside client) may do anything.
ACL = """\
user gateway
topic readwrite allowed/#
topic read in/#

user probe
topic readwrite #

user device-7
topic readwrite devices/device-7/#
"""
USERS = {"gateway": "gw-secret", "probe": "probe-secret"}


# -- brokers, certificates, an outside client ------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``broker(**options)``: a Mosquitto (``gateways.testing.Mosquitto`` options), started;
    killed at teardown."""
    started: list[Mosquitto] = []

    def make(**options: Any) -> Mosquitto:
        directory = tmp_path / f"mosquitto-{len(started)}"
        directory.mkdir()
        server = Mosquitto(directory, **options)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.kill()


def openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("openssl is not installed (apt-get install -y openssl)")
    subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> Path:
    """In ``directory``: ca.pem (a test CA), server.pem/.key for 127.0.0.1, device.pem/.key
    (CN=device-7) signed by it, and rogue.pem/.key (also CN=device-7) by another CA."""
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *curve, "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                "-days", "2", "-subj", f"/CN=asgi-gateway {ca}", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, subject, ca, ext in (
        ("server", "/CN=127.0.0.1", "ca", ["-extfile", "san.ext"]),
        ("device", "/CN=device-7", "ca", []),
        ("rogue", "/CN=device-7", "other-ca", []),
    ):
        openssl("req", *curve, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", subject, cwd=directory)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
                f"{ca}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *ext,
                cwd=directory)  # fmt: skip
    return directory


class Probe:
    """An outside client (user "probe", allowed everything) collecting what arrives."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()

    async def read(self) -> None:
        async for message in self.client.messages:
            self.received.put_nowait(message)

    async def next(self, within: float = 5.0) -> aiomqtt.Message:
        try:
            async with asyncio.timeout(within):
                return await self.received.get()
        except TimeoutError:
            pytest.fail(f"no message arrived at the probe within {within} s")

    def topics(self) -> list[str]:
        found = []
        while not self.received.empty():
            found.append(self.received.get_nowait().topic.value)
        return found


@contextlib.asynccontextmanager
async def probe_of(
    server: Mosquitto, protocol: str, topic_filter: str = "#"
) -> AsyncIterator[Probe]:
    version = aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311
    client = aiomqtt.Client(
        "127.0.0.1", server.port, username="probe", password=USERS["probe"], protocol=version,
        timeout=5,
    )  # fmt: skip
    async with asyncio.timeout(10), client:
        probe = Probe(client)
        reader = asyncio.create_task(probe.read())
        await client.subscribe(topic_filter, 1)
        try:
            yield probe
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader


def gateway_for(app: Any, broker_url: str, protocol: str, **options: Any) -> MqttGateway:
    options.setdefault("reconnect", FAST)
    options.setdefault("username", "gateway")
    options.setdefault("password", USERS["gateway"])
    return MqttGateway(
        "devices", app, MqttGatewayOptions(broker=broker_url, protocol=protocol, **options)
    )


# -- an application that publishes what it is told to --------------------------------------


class Relay(MqttConsumer):
    """On ``in/<name>`` (or ``<prefix>/in/<name>``) with payload ``"<topic> <qos>"``: publish
    to that topic at that QoS, then report what happened (``ok`` or the error's text) on
    ``allowed/done/<name>`` (or ``<prefix>/done/<name>``)."""

    errors: Any = None

    async def receive(self, message: Any) -> None:
        topic_in = message["topic"]
        if topic_in.startswith("in/"):
            report = "allowed/done/" + topic_in.removeprefix("in/")
        else:
            report = topic_in.replace("/in/", "/done/")
        topic, qos = message["payload"].decode().split()
        try:
            await self.publish(topic, b"relayed", qos=int(qos))
        except GatewayError as exc:
            self.errors.append(exc)
            await self.publish(report, str(exc).encode(), qos=1)
        else:
            await self.publish(report, b"ok", qos=1)


@pytest.fixture
def relay() -> tuple[Any, list[BaseException]]:
    errors: list[BaseException] = []
    return Relay.as_asgi(errors=errors), errors


# -- publishing ------------------------------------------------------------------------------


@PROTOCOLS
async def test_an_allowed_publish_arrives(protocol, broker, relay, run_gateway):
    server = broker(users=USERS, acl=ACL)
    app, errors = relay
    await run_gateway(gateway_for(app, server.url, protocol, subscriptions=[{"topic": "in/#"}]))
    async with probe_of(server, protocol, "allowed/#") as probe:
        await probe.client.publish("in/a", b"allowed/out 1", qos=1)
        first, second = await probe.next(), await probe.next()
    assert (first.topic.value, first.payload) == ("allowed/out", b"relayed")
    assert (second.topic.value, second.payload) == ("allowed/done/a", b"ok")
    assert errors == []


@PROTOCOLS
async def test_a_denied_publish_does_not_arrive(protocol, broker, relay, run_gateway):
    """MQTT 5: PUBACK 0x87 raises in the consumer's ``publish``, named, and the gateway goes
    on serving other scopes. MQTT 3.1.1: the broker acknowledges and drops it; no error."""
    server = broker(users=USERS, acl=ACL)
    app, errors = relay
    await run_gateway(gateway_for(app, server.url, protocol, subscriptions=[{"topic": "in/#"}]))
    async with probe_of(server, protocol, "#") as probe:
        await probe.client.publish("in/a", b"forbidden/out 1", qos=1)
        while (message := await probe.next()).topic.value != "allowed/done/a":
            pass
        outcome = message.payload.decode()
        # Another scope, after the refusal: served as before.
        await probe.client.publish("in/b", b"allowed/out 1", qos=1)
        while (message := await probe.next()).topic.value != "allowed/done/b":
            pass
        assert message.payload == b"ok"
        seen = probe.topics()
    assert "forbidden/out" not in seen
    if protocol == "5":
        (error,) = errors
        assert isinstance(error, BrokerRefused)
        assert (error.packet, error.code, error.reason, error.topic) == (
            "PUBACK",
            0x87,
            "Not authorized",
            "forbidden/out",
        )
        assert "PUBACK reason code 0x87 Not authorized" in outcome
        assert "'forbidden/out'" in outcome
        assert "gw-secret" not in outcome
    else:
        assert errors == []
        assert outcome == "ok"  # MQTT 3.1.1 has no way to say no


@PROTOCOLS
async def test_a_denied_qos_0_publish_raises_nothing(protocol, broker, relay, run_gateway):
    server = broker(users=USERS, acl=ACL)
    app, errors = relay
    await run_gateway(gateway_for(app, server.url, protocol, subscriptions=[{"topic": "in/#"}]))
    async with probe_of(server, protocol, "#") as probe:
        await probe.client.publish("in/a", b"forbidden/out 0", qos=1)
        while (message := await probe.next()).topic.value != "allowed/done/a":
            pass
        assert message.payload == b"ok"
        assert "forbidden/out" not in probe.topics()
    assert errors == []


# -- subscribing -----------------------------------------------------------------------------


def dynamic_security() -> dict[str, Any]:
    """The gateway may subscribe to ``allowed/#`` only; the probe to anything."""
    return {
        "clients": [
            dynsec_client("gateway", USERS["gateway"], "gateway"),
            dynsec_client("probe", USERS["probe"], "all"),
        ],
        "roles": [
            {
                "rolename": "gateway",
                "acls": [
                    {"acltype": "subscribePattern", "topic": "allowed/#", "allow": True},
                    {"acltype": "publishClientSend", "topic": "allowed/#", "allow": True},
                ],
            },
            {
                "rolename": "all",
                "acls": [
                    {"acltype": "subscribePattern", "topic": "#", "allow": True},
                    {"acltype": "publishClientSend", "topic": "#", "allow": True},
                ],
            },
        ],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


@PROTOCOLS
async def test_a_refused_subscription_is_a_start_error_naming_it(
    protocol, broker, recording_app, run_gateway
):
    server = broker(dynamic_security=dynamic_security())
    gateway = gateway_for(
        recording_app(),
        server.url,
        protocol,
        subscriptions=[{"topic": "allowed/#"}, {"topic": "secret/#", "qos": 1}],
    )
    with pytest.raises(BrokerRefused) as caught:
        await run_gateway(gateway)
    error = caught.value
    code, name = (0x87, "Not authorized") if protocol == "5" else (0x80, "Failure")
    assert (error.packet, error.code, error.reason, error.topic) == (
        "SUBACK",
        code,
        name,
        "secret/#",
    )
    assert f"refused the subscription to 'secret/#': SUBACK reason code 0x{code:02X} {name}" in str(
        error
    )
    assert "gw-secret" not in str(error)
    assert not gateway.connected


@PROTOCOLS
async def test_a_refused_subscribe_event_raises_in_the_application(
    protocol, broker, recording_app, run_gateway
):
    async def subscribe(log, event):
        if event["type"] == "mqtt.message":
            await log.send({"type": "mqtt.subscribe", "topic": "secret/#"})

    server = broker(dynamic_security=dynamic_security())
    app = recording_app(on_event=subscribe)
    gateway = await run_gateway(
        gateway_for(app, server.url, protocol, subscriptions=[{"topic": "allowed/#"}])
    )
    async with probe_of(server, protocol) as probe:
        await probe.client.publish("allowed/a", b"go", qos=1)
        await app.wait_for(lambda: bool(app.logs) and bool(app.logs[0].errors))
    (error,) = app.logs[0].errors
    assert isinstance(error, BrokerRefused)
    assert (error.packet, error.topic) == ("SUBACK", "secret/#")
    assert error.code == (0x87 if protocol == "5" else 0x80)
    assert gateway.connected


@PROTOCOLS
async def test_the_acl_file_grants_a_subscribe_but_withholds_its_messages(
    protocol, broker, recording_app, run_gateway
):
    """Mosquitto 2.0's acl_file does not check SUBSCRIBE (only the dynamic security plugin
    does): the gateway starts, and messages it may not read never come."""
    server = broker(users=USERS, acl=ACL)
    app = recording_app()
    gateway = await run_gateway(
        gateway_for(app, server.url, protocol, subscriptions=[{"topic": "#"}])
    )
    async with probe_of(server, protocol) as probe:
        await probe.client.publish("secret/a", b"hidden", qos=1)
        await probe.client.publish("allowed/a", b"seen", qos=1)
        await app.wait_for(lambda: any(log.scope["topic"] == "allowed/a" for log in app.logs))
    assert [log.scope["topic"] for log in app.logs] == ["allowed/a"]
    assert gateway.connected


# -- logging in ------------------------------------------------------------------------------


@PROTOCOLS
async def test_a_wrong_password_is_one_clear_start_error(
    protocol, broker, recording_app, run_gateway, caplog
):
    server = broker(users=USERS, acl=ACL)
    gateway = gateway_for(recording_app(), server.url, protocol, password="not-the-password")
    with caplog.at_level(logging.DEBUG), pytest.raises(BrokerRefused) as caught:
        await run_gateway(gateway)
    error = caught.value
    assert (error.packet, error.code, error.reason) == ("CONNACK", 0x87, "Not authorized")
    shown = "CONNACK reason code 0x87" if protocol == "5" else "CONNACK return code 5"
    assert shown in str(error)
    assert "refused the connection" in str(error)
    assert "not-the-password" not in str(error) + caplog.text
    assert not any(record.exc_info for record in caplog.records)  # no traceback logged


# -- client certificates ---------------------------------------------------------------------


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    directory = tmp_path / "certs"
    directory.mkdir()
    return make_certificates(directory)


def tls_broker(broker: Callable[..., Mosquitto], certs: Path) -> Mosquitto:
    return broker(
        users=USERS,
        acl=ACL,
        tls=BrokerTls(
            certs / "ca.pem",
            certs / "server.pem",
            certs / "server.key",
            require_certificate=True,
            use_identity_as_username=True,
        ),
    )


@PROTOCOLS
async def test_the_client_certificate_is_the_acl_user(
    protocol, broker, certificates, relay, run_gateway
):
    """The certificate's CN (device-7) is the user the ACL sees: it may publish under
    devices/device-7/ and nowhere else."""
    server = tls_broker(broker, certificates)
    app, errors = relay
    gateway = await run_gateway(
        gateway_for(
            app,
            server.tls_url,
            protocol,
            username=None,
            password=None,
            tls={
                "ca_file": str(certificates / "ca.pem"),
                "cert_file": str(certificates / "device.pem"),
                "key_file": str(certificates / "device.key"),
            },
            subscriptions=[{"topic": "devices/device-7/in/#"}],
        )
    )
    assert gateway.connected
    assert "u'device-7'" in server.stderr()
    async with probe_of(server, protocol, "#") as probe:
        await probe.client.publish("devices/device-7/in/a", b"devices/device-7/out 1", qos=1)
        message = await probe.next()
        while message.topic.value.startswith("devices/device-7/in"):
            message = await probe.next()
        assert (message.topic.value, message.payload) == ("devices/device-7/out", b"relayed")
        # allowed/ is the user "gateway"'s, not device-7's.
        await probe.client.publish("devices/device-7/in/b", b"allowed/out 1", qos=1)
        while (message := await probe.next()).topic.value != "devices/device-7/done/b":
            pass
        assert "allowed/out" not in probe.topics()
    if protocol == "5":
        (error,) = errors
        assert isinstance(error, BrokerRefused)
        assert (error.code, error.topic) == (0x87, "allowed/out")
        assert b"0x87 Not authorized" in message.payload
    else:
        assert errors == []
        assert message.payload == b"ok"


async def test_without_a_certificate_the_gateway_does_not_connect(
    broker, certificates, recording_app, run_gateway
):
    server = tls_broker(broker, certificates)
    gateway = await run_gateway(
        gateway_for(
            recording_app(),
            server.tls_url,
            "5",
            username=None,
            password=None,
            tls={"ca_file": str(certificates / "ca.pem")},
            publish_timeout=1,
            reconnect={"initial": 5, "maximum": 5},
        )
    )
    assert not gateway.connected
    async with asyncio.timeout(10):
        await gateway.stop()


def test_a_missing_client_certificate_file_names_its_key(tmp_path):
    with pytest.raises(ValueError, match="does not exist") as caught:
        MqttGatewayOptions(broker="mqtts://127.0.0.1", tls={"cert_file": str(tmp_path / "no.pem")})
    assert caught.value.errors()[0]["loc"] == ("tls", "cert_file")  # type: ignore[attr-defined]


def test_a_key_password_needs_a_client_certificate():
    with pytest.raises(ValueError, match="key_password"):
        MqttGatewayOptions(broker="mqtts://127.0.0.1", tls={"key_password": "x"})


async def test_an_encrypted_key_is_opened_with_key_password(certificates):
    openssl("ec", "-in", "device.key", "-out", "device-locked.key", "-aes256",
            "-passout", "pass:k3y", cwd=certificates)  # fmt: skip
    tls = {
        "ca_file": str(certificates / "ca.pem"),
        "cert_file": str(certificates / "device.pem"),
        "key_file": str(certificates / "device-locked.key"),
    }
    options = MqttGatewayOptions(broker="mqtts://127.0.0.1", tls={**tls, "key_password": "k3y"})
    assert isinstance(options.tls.context("devices", verify=True), ssl.SSLContext)  # type: ignore[union-attr]
    assert "k3y" not in repr(options)
    wrong = MqttGatewayOptions(broker="mqtts://127.0.0.1", tls={**tls, "key_password": "nope"})
    with pytest.raises(GatewayError, match="can't load the TLS files") as caught:
        wrong.tls.context("devices", verify=True)  # type: ignore[union-attr]
    assert "nope" not in str(caught.value)
