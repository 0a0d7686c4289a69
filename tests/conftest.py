"""Shared fixtures: real servers on free loopback ports, an outside MQTT client, a recording
ASGI application and a gateway runner that always stops what it started."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import pytest
from daemon_helpers import Daemon
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateways.base import GatewayError
from gateways.testing import Mosquitto, RedisServer, free_port
from layer.base import LayerError

ServerT = TypeVar("ServerT")

# -- Mosquitto (gateways.testing, a public test utility) -----------------------------------


@pytest.fixture(name="free_port")
def free_port_fixture() -> Callable[[], int]:
    """``free_port()``: a TCP port free on 127.0.0.1 right now."""
    return free_port


class StartedServers:
    """Servers a ``make_*`` fixture started, each with its files in a directory of its own
    under ``tmp_path``, on a free port; ``kill_all()`` at teardown."""

    def __init__(self, tmp_path: Path, prefix: str) -> None:
        self.tmp_path = tmp_path
        self.prefix = prefix
        self.started: list[Any] = []

    def start(self, build: Callable[[Path, int], ServerT]) -> ServerT:
        """``build(directory, port)``, then start it; a server that won't start fails the test."""
        directory = self.tmp_path / f"{self.prefix}-{len(self.started)}"
        directory.mkdir()
        server: Any = build(directory, free_port())
        self.started.append(server)
        try:
            server.start()
        except (GatewayError, LayerError) as exc:
            pytest.fail(str(exc))
        return server

    def kill_all(self) -> None:
        for server in self.started:
            server.kill()


@pytest.fixture
def make_mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``make_mosquitto(extra_config="", persistence=False)``: start another Mosquitto on a
    free port (its files in a directory of its own under ``tmp_path``); every one is killed
    at teardown."""
    servers = StartedServers(tmp_path, "mosquitto")

    def make(extra_config: str = "", *, persistence: bool = False) -> Mosquitto:
        return servers.start(
            lambda directory, port: Mosquitto(
                directory, port, extra_config, persistence=persistence
            )
        )

    yield make
    servers.kill_all()


@pytest.fixture
def mosquitto(make_mosquitto: Callable[..., Mosquitto]) -> Mosquitto:
    """A running Mosquitto on a free port, stopped at teardown."""
    return make_mosquitto()


# -- an outside MQTT client -----------------------------------------------------------------


class MqttProbe:
    """An independent aiomqtt client: subscribe, publish, and collect what arrives."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()

    async def _read(self) -> None:
        async for message in self.client.messages:
            self.received.put_nowait(message)

    async def subscribe(self, topic_filter: str, qos: int = 0) -> None:
        """Subscribe and wait for the SUBACK."""
        async with asyncio.timeout(5):
            await self.client.subscribe(topic_filter, qos)

    async def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        *,
        qos: int = 0,
        retain: bool = False,
        properties: dict[str, Any] | None = None,
    ) -> None:
        """Publish (and wait for the PUBACK/PUBCOMP at QoS 1/2). ``properties`` uses paho's
        names, e.g. ``{"ContentType": "text/plain", "UserProperty": [("a", "1")]}``."""
        paho = None
        if properties:
            paho = Properties(PacketTypes.PUBLISH)
            for name, value in properties.items():
                setattr(paho, name, value)
        async with asyncio.timeout(5):
            await self.client.publish(topic, payload, qos=qos, retain=retain, properties=paho)

    async def next(self, within: float = 5.0) -> aiomqtt.Message:
        """The next message received; fails the test after ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                return await self.received.get()
        except TimeoutError:
            pytest.fail(f"no MQTT message arrived at the probe within {within} s")

    async def collect(self, count: int, within: float = 5.0) -> list[aiomqtt.Message]:
        """The next ``count`` messages, all within ``within`` seconds."""
        deadline = asyncio.get_running_loop().time() + within
        messages: list[aiomqtt.Message] = []
        for _ in range(count):
            remaining = max(deadline - asyncio.get_running_loop().time(), 0.001)
            messages.append(await self.next(remaining))
        return messages

    async def nothing(self, wait: float = 0.3) -> None:
        """Fail if a message arrives within ``wait`` seconds (as asgiref's receive_nothing)."""
        await asyncio.sleep(wait)
        if not self.received.empty():
            message = self.received.get_nowait()
            pytest.fail(f"unexpected message on {message.topic}: {message.payload!r}")


@pytest.fixture
def mqtt_client() -> Callable[..., contextlib.AbstractAsyncContextManager[MqttProbe]]:
    """``async with mqtt_client(url, protocol=5) as probe:`` an outside client of a broker."""

    @contextlib.asynccontextmanager
    async def connect(url: str, *, protocol: int | str = "3.1.1") -> AsyncIterator[MqttProbe]:
        host, _, port = url.removeprefix("mqtt://").rpartition(":")
        version = aiomqtt.ProtocolVersion.V5 if str(protocol) == "5" else None
        client = aiomqtt.Client(host, int(port), protocol=version, timeout=5)
        async with asyncio.timeout(10):
            await client.__aenter__()
        probe = MqttProbe(client)
        reader = asyncio.create_task(probe._read())
        try:
            yield probe
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader
            with contextlib.suppress(aiomqtt.MqttError):
                async with asyncio.timeout(10):
                    await client.__aexit__(None, None, None)

    return connect


# -- a recording ASGI application -----------------------------------------------------------


class ScopeLog:
    """One application instance as the recording app saw it."""

    def __init__(self, scope: dict[str, Any], send: Callable[[Any], Any]) -> None:
        self.scope = scope
        self.send = send
        self.events: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def __repr__(self) -> str:
        return f"<ScopeLog {self.scope.get('scope_key')!r} {self.types} errors={self.errors}>"


class RecordingApp:
    """A raw ASGI application recording every instance's scope and events.

    Each instance runs until its ``<protocol>.disconnect`` event. ``on_event(log, event)``,
    if given, runs after each other event (to make the instance send); what it raises is
    kept in ``log.errors``.
    """

    def __init__(self, on_event: Callable[[ScopeLog, dict[str, Any]], Any] | None = None) -> None:
        self.on_event = on_event
        self.logs: list[ScopeLog] = []
        self._changed: asyncio.Condition | None = None

    def __repr__(self) -> str:
        return f"<RecordingApp {self.logs}>"

    def by_key(self, key: str) -> list[ScopeLog]:
        return [log for log in self.logs if log.scope.get("scope_key") == key]

    async def _notify(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            self._changed.notify_all()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        log = ScopeLog(scope, send)
        self.logs.append(log)
        while True:
            event = await receive()
            log.events.append(event)
            if not event["type"].endswith(".disconnect") and self.on_event is not None:
                try:
                    await self.on_event(log, event)
                except Exception as exc:
                    log.errors.append(exc)
            await self._notify()
            if event["type"].endswith(".disconnect"):
                return

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` holds after some event; fail after ``within`` s."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            pytest.fail(f"condition not met within {within} s; recorded: {self.logs}")


@pytest.fixture
def recording_app() -> Callable[..., RecordingApp]:
    """``recording_app(on_event=None)``: a fresh ``RecordingApp``."""
    return RecordingApp


# -- subprocesses ---------------------------------------------------------------------------


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """A list to append started processes to; each is killed (if still running) and its
    pipes closed at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def run_daemon(mosquitto: Mosquitto) -> Iterator[Callable[..., Daemon]]:
    """``run_daemon(config, **env)``: ``python -m gateways run config`` on ``mosquitto``
    (``MQTT_URL``) at log level INFO; every daemon is killed at teardown."""
    started: list[Daemon] = []

    def start(config: Path, **env: str) -> Daemon:
        daemon = Daemon(config, {"MQTT_URL": mosquitto.url, "LOG_LEVEL": "INFO", **env})
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop(signal.SIGKILL)


# -- running gateways -----------------------------------------------------------------------


@pytest.fixture
async def run_gateway() -> AsyncIterator[Callable[[Any], Any]]:
    """``await run_gateway(gateway)`` starts it (10 s bound); every gateway started is
    stopped at teardown, also when the test failed."""
    started: list[Any] = []

    async def start(gateway: Any) -> Any:
        started.append(gateway)
        async with asyncio.timeout(10):
            await gateway.start()
        return gateway

    yield start
    for gateway in reversed(started):
        async with asyncio.timeout(15):
            await gateway.stop(drain_timeout=2)


# -- redis-server (gateways.testing, a public test utility) ---------------------------------


@pytest.fixture
def make_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``make_redis(extra_args=None)``: start another redis-server on a free port (its log in a
    directory of its own under ``tmp_path``); every one is killed at teardown."""
    servers = StartedServers(tmp_path, "redis")

    def make(extra_args: list[str] | None = None) -> RedisServer:
        return servers.start(lambda directory, port: RedisServer(directory, port, extra_args))

    yield make
    servers.kill_all()


@pytest.fixture
def redis_server(make_redis: Callable[..., RedisServer]) -> RedisServer:
    """A running redis-server on a free port, killed at teardown."""
    return make_redis()


# -- Slack (gateways.testing.slack_server, a public test utility) ----------------------------------


@pytest.fixture
async def slack_server() -> AsyncIterator[Any]:
    """A started ``SlackTestServer`` on a free port, stopped at teardown. An unacknowledged
    ``events_api`` envelope is redelivered after 0.5 s (Slack: 3 s)."""
    from gateways.testing.slack_server import SlackTestServer

    async with SlackTestServer.started(ack_timeout=0.5) as server:
        yield server


@pytest.fixture
def slack_options(slack_server: Any) -> Callable[..., Any]:
    """``slack_options(**overrides)``: ``SlackGatewayOptions`` pointing at ``slack_server``:
    Socket Mode (``mode="http"`` listens on a free port), its tokens and signing secret,
    short pings and timeouts."""
    from gateways.slack.options import SlackGatewayOptions

    def make(**overrides: Any) -> Any:
        values: dict[str, Any] = {
            "bot_token": slack_server.bot_token,
            "app_token": slack_server.app_token,
            "signing_secret": slack_server.signing_secret,
            "base_url": slack_server.api_url,
            "port": 0,
            "ping_interval": 0.3,
            "connect_timeout": 5,
            "api_timeout": 5,
        }
        values.update(overrides)
        return SlackGatewayOptions(**values)

    return make


# -- ngircd and IRC humans (gateways.testing.ngircd, a public test utility) --------------------

import re  # noqa: E402 (this section's own imports)

from gateways.irc import IrcGateway, IrcGatewayOptions  # noqa: E402
from gateways.testing.ngircd import Ngircd  # noqa: E402


@pytest.fixture
def make_ngircd(tmp_path: Path) -> Iterator[Callable[..., Ngircd]]:
    """``make_ngircd(password=None, penalties=False)``: start another ngircd on a free port
    (its files in a directory of its own under ``tmp_path``); every one is killed at
    teardown. Penalties (ngircd's flood protection) are off unless asked, to keep tests fast."""
    servers = StartedServers(tmp_path, "ngircd")

    def make(password: str | None = None, penalties: bool = False) -> Ngircd:
        return servers.start(
            lambda directory, port: Ngircd(directory, port, password=password, penalties=penalties)
        )

    yield make
    servers.kill_all()


@pytest.fixture
def ngircd(make_ngircd: Callable[..., Ngircd]) -> Ngircd:
    """A running ngircd (``gateways.testing.ngircd.Ngircd``) on a free port, killed at teardown."""
    return make_ngircd()


class IrcHuman:
    """An ordinary IRC client on a raw socket, playing the human in IRC tests.

    Every line received is kept (``raw_lines``, bytes without CRLF) and answered if it is a
    PING. ``expect(pattern)`` waits for the next line matching a regular expression.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, nick: str):
        self.reader = reader
        self.writer = writer
        self.nick = nick
        self.raw_lines: list[bytes] = []
        self.cursor = 0
        self.closed = False
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    def __repr__(self) -> str:
        return f"<IrcHuman {self.nick!r} lines={len(self.raw_lines)}>"

    @property
    def lines(self) -> list[str]:
        return [line.decode(errors="replace") for line in self.raw_lines]

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.readline()
                if not data:
                    break
                line = data.rstrip(b"\r\n")
                if line.startswith(b"PING"):
                    self.writer.write(b"PONG" + line[4:] + b"\r\n")
                self.raw_lines.append(line)
                self._changed.set()
        except OSError:
            pass
        finally:
            self.closed = True
            self._changed.set()

    async def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def privmsg(self, target: str, text: str) -> None:
        await self.send(f"PRIVMSG {target} :{text}")

    async def expect(self, pattern: str, within: float = 10.0) -> re.Match[str]:
        """The next line (after the last one expected) matching ``pattern`` (``re.search``)."""
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(within):
                while True:
                    lines = self.raw_lines
                    while self.cursor < len(lines):
                        line = lines[self.cursor].decode(errors="replace")
                        self.cursor += 1
                        match = regex.search(line)
                        if match is not None:
                            return match
                    if self.closed:
                        raise TimeoutError
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(
                f"{self.nick} got no line matching {pattern!r} within {within} s "
                f"(connection closed: {self.closed}); lines: {self.lines[-20:]}"
            )

    async def join(self, channel: str) -> None:
        await self.send(f"JOIN {channel}")
        await self.expect(rf"^:{re.escape(self.nick)}!\S+ JOIN :?{re.escape(channel)}$")

    async def wait_member(self, channel: str, nick: str, within: float = 10.0) -> None:
        """Wait until ``nick`` is in ``channel`` (asks NAMES every 0.2 s)."""
        names = re.compile(rf" 353 \S+ [=*@] {re.escape(channel)} :(.*)$")
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            await self.send(f"NAMES {channel}")
            match = await self.expect(rf" 366 \S+ {re.escape(channel)} ")
            start = max(self.cursor - 50, 0)
            for line in self.lines[start : self.cursor]:
                found = names.search(line)
                if found and nick in [n.lstrip("~&@%+") for n in found.group(1).split()]:
                    return
            del match
            await asyncio.sleep(0.2)
        pytest.fail(f"{nick} did not join {channel} within {within} s; lines: {self.lines[-20:]}")

    async def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                await self.send("QUIT :bye")
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture
def irc_human() -> Callable[..., contextlib.AbstractAsyncContextManager[IrcHuman]]:
    """``async with irc_human(server, "alice") as alice:`` a registered ordinary IRC client
    (``password`` for a server that needs one)."""

    @contextlib.asynccontextmanager
    async def connect(
        server: Ngircd, nick: str, password: str | None = None
    ) -> AsyncIterator[IrcHuman]:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(server.host, server.port)
        human = IrcHuman(reader, writer, nick)
        try:
            if password is not None:
                await human.send(f"PASS {password}")
            await human.send(f"NICK {nick}")
            await human.send(f"USER {nick} 0 * :{nick} the human")
            await human.expect(r"^:\S+ (001|433) ")
            if human.lines[human.cursor - 1].split()[1] == "433":
                pytest.fail(f"nick {nick!r} is taken on {server}")
            yield human
        finally:
            await human.close()

    return connect


@pytest.fixture
def make_irc_gateway() -> Callable[..., IrcGateway]:
    """``make_irc_gateway(server, app, **options)``: an ``IrcGateway`` (not started) named
    ``"irc"`` for ``server``, nick ``gwbot``, channel ``#t``, fast reconnects and flood
    control; ``options`` override those."""

    def make(server: Ngircd, app: Any, **options: Any) -> IrcGateway:
        settings: dict[str, Any] = {
            "server": server.host,
            "port": server.port,
            "nick": "gwbot",
            "channels": ["#t"],
            "connect_timeout": 5,
            "send_timeout": 10,
            "reconnect": {"initial": 0.1, "maximum": 1.0},
            "flood": {"burst": 5, "rate": 50},
        }
        settings.update(options)
        return IrcGateway("irc", app, IrcGatewayOptions(**settings))

    return make


# -- a real browser (gateways.testing.browser) -----------------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (Debian's ``chromium``) under Playwright, closed after the test:
    open a context of your own (``await browser.new_context()``) for each visitor."""
    from gateways.testing.browser import chromium

    async with chromium() as started:
        yield started
