"""The daemon end to end: ``python -m gateways run FILE`` as a subprocess against a real
Mosquitto, with an outside MQTT client playing the devices."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from daemon_helpers import APPS, ROOT, Daemon, client, next_message, state, until_reply


async def test_echo_example_replies(mosquitto: Any, run_daemon: Any) -> None:
    daemon = run_daemon(ROOT / "examples" / "echo.yaml")
    async with client(mosquitto, "echo/+/reply") as c:
        reply = await until_reply(c, "echo/alice", b"hello", "echo/alice/reply")
        assert reply.payload == b"hello"
        await c.publish("echo/bob", b"hi bob", qos=1)
        assert (await next_message(c, "echo/bob/reply")).payload == b"hi bob"
    assert daemon.stop() == 0


async def test_thermostat_keeps_per_device_state_across_a_broker_restart(
    mosquitto: Any, run_daemon: Any
) -> None:
    daemon = run_daemon(ROOT / "examples" / "thermostat" / "gateway.yaml")
    async with client(mosquitto, "devices/+/state/reply") as c:
        first = await until_reply(c, "devices/kitchen/get", b"", "devices/kitchen/state/reply")
        assert state(first) == {"last": None, "avg": None, "count": 0}
        await c.publish("devices/kitchen/telemetry", b'{"temperature": 21.5}', qos=1)
        await c.publish("devices/kitchen/telemetry", b'{"temperature": 22.5}', qos=1)
        await c.publish("devices/hall/telemetry", b'{"temperature": 18}', qos=1)
        await c.publish("devices/kitchen/telemetry", b"not json", qos=1)
        await c.publish("devices/kitchen/get", b"", qos=1)
        reply = await next_message(c, "devices/kitchen/state/reply")
        assert state(reply) == {"last": 22.5, "avg": 22.0, "count": 2}

    # The retained state is there for a newcomer.
    async with client(mosquitto, "devices/kitchen/state") as c:
        retained = await next_message(c, "devices/kitchen/state")
        assert retained.retain
        assert state(retained) == {"last": 22.5, "avg": 22.0, "count": 2}

    mosquitto.kill()  # as a crash would: no clean close of the daemon's connection
    mosquitto.start()

    # The daemon reconnects and the kitchen's consumer still holds its readings.
    async with client(mosquitto, "devices/+/state/reply") as c:
        await until_reply(c, "devices/kitchen/get", b"", "devices/kitchen/state/reply")
        await c.publish("devices/kitchen/telemetry", b'{"temperature": 25.0}', qos=1)
        await c.publish("devices/kitchen/get", b"", qos=1)
        reply = await next_message(c, "devices/kitchen/state/reply")
        assert state(reply) == {"last": 25.0, "avg": 23.0, "count": 3}
    assert daemon.stop() == 0
    # The bad reading was logged with its topic (and skipped: the count above is 2, then 3).
    assert "devices/kitchen/telemetry" in daemon.output


def crashy_config(tmp_path: Path) -> Path:
    """A gateway file serving tests/daemon_apps/crashy.py from the broker in MQTT_URL."""
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: crashy:application\n"
        "gateways:\n"
        "  workers:\n"
        "    type: mqtt\n"
        "    broker: ${MQTT_URL}\n"
    )
    return config


async def test_a_crashing_consumer_ends_only_its_scope(
    mosquitto: Any, run_daemon: Any, tmp_path: Path
) -> None:
    daemon = run_daemon(crashy_config(tmp_path))
    async with client(mosquitto, "work/+/done") as c:
        await until_reply(c, "work/a", b"x", "work/a/done")
        await until_reply(c, "work/b", b"x", "work/b/done")
        await c.publish("work/b", b"boom", qos=1)
        await c.publish("work/a", b"y", qos=1)
        assert (await next_message(c, "work/a/done")).payload == b"2:y"
        # b's consumer crashed: the next message opens a fresh instance (its count restarts).
        await c.publish("work/b", b"z", qos=1)
        assert (await next_message(c, "work/b/done")).payload == b"1:z"
    assert daemon.stop() == 0
    assert "worker b hit a bad payload" in daemon.output
    assert "'workers'" in daemon.output
    assert "'work/b'" in daemon.output


async def test_sigterm_sends_every_scope_its_disconnect_then_exits_0(
    mosquitto: Any, run_daemon: Any, tmp_path: Path
) -> None:
    daemon = run_daemon(crashy_config(tmp_path))
    async with client(mosquitto, "work/+/done", "bye/+") as c:
        for name in ("a", "b", "c"):
            await until_reply(c, f"work/{name}", b"x", f"work/{name}/done")
        daemon.process.send_signal(signal.SIGTERM)
        byes: dict[str, bytes] = {}
        async with asyncio.timeout(15):
            async for message in c.messages:
                if message.topic.value.startswith("bye/"):
                    assert isinstance(message.payload, bytes)
                    byes[message.topic.value] = message.payload
                    if len(byes) == 3:
                        break
    assert byes == {"bye/a": b"shutdown", "bye/b": b"shutdown", "bye/c": b"shutdown"}
    assert daemon.stop(sig=None) == 0, daemon.output
    assert "Received SIGTERM: stopping gracefully" in daemon.output


async def test_the_readmes_first_command_serves_on_the_embedded_broker(tmp_path: Path) -> None:
    """``asgi-gateway run examples/thermostat/gateway.yaml`` with no MQTT_URL: the in-process
    broker (here on a free port instead of 1883, which the machine may use)."""
    from gateways.testing import free_port

    port, web, monitoring = free_port(), free_port(), free_port()
    daemon = Daemon(
        ROOT / "examples" / "thermostat" / "gateway.yaml",
        {
            "MQTT_URL": f"embedded://127.0.0.1:{port}",
            "LOG_LEVEL": "INFO",
            "WEBCHAT_PORT": str(web),
            "MONITORING_PORT": str(monitoring),
            "THERMOSTAT_SIMULATE": "1",  # as the README's command runs: simulated devices on
        },
    )
    try:
        async with asyncio.timeout(30):
            while True:  # the broker starts with the daemon
                try:
                    async with aiomqtt.Client("127.0.0.1", port) as c:
                        await c.subscribe("devices/+/state/reply", qos=1)
                        # A first reply: the daemon has subscribed (the broker keeps nothing
                        # for a subscriber that is not there yet).
                        await until_reply(c, "devices/lab/get", b"", "devices/lab/state/reply")
                        await c.publish("devices/lab/telemetry", b'{"temperature": 20}', qos=1)
                        await c.publish("devices/lab/get", b"", qos=1)
                        reply = await next_message(c, "devices/lab/state/reply")
                        while state(reply)["count"] == 0:  # a late answer to an earlier get
                            reply = await next_message(c, "devices/lab/state/reply")
                        break
                except aiomqtt.MqttError:
                    await asyncio.sleep(0.2)
        assert state(reply) == {"last": 20.0, "avg": 20.0, "count": 1}
        # On the embedded broker, the example's simulated devices publish readings: kitchen's
        # state (retained) counts them.
        async with aiomqtt.Client("127.0.0.1", port) as c:
            await c.subscribe("devices/kitchen/state", qos=1)
            kitchen = state(await next_message(c, "devices/kitchen/state", timeout=20))
        assert kitchen["count"] >= 1
        assert 20.0 <= kitchen["last"] <= 22.0
        # It serves its web chat and its dashboard, and says where.
        async with aiohttp.ClientSession() as http:
            for url in (f"http://127.0.0.1:{web}/", f"http://127.0.0.1:{monitoring}/"):
                async with http.get(url) as page:
                    assert page.status == 200, url
                    assert "text/html" in page.headers["Content-Type"]
        assert daemon.stop() == 0, daemon.output
        assert f"Gateway 'web' (webchat) at http://127.0.0.1:{web}/" in daemon.output
        assert f"Dashboard and /metrics, /healthz, /readyz at http://127.0.0.1:{monitoring}/" in (
            daemon.output
        )
        assert "Embedded MQTT broker listening" in daemon.output
    finally:
        daemon.stop(signal.SIGKILL)


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateways", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(APPS)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_accepts_the_examples() -> None:
    for example in ("examples/echo.yaml", "examples/thermostat/gateway.yaml"):
        result = run_cli("check", example)
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout


def test_check_and_run_name_the_bad_key_and_its_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: crashy:application\n"
        "gateways:\n"
        "  workers:\n"
        "    type: mqtt\n"
        "    broker: mqtt://127.0.0.1:1\n"
        "    keep_alive: 30\n"
    )
    for command in ("check", "run"):
        result = run_cli(command, str(config))
        assert result.returncode == 2
        assert "gateway.yaml:6" in result.stderr
        assert "gateways.workers.keep_alive" in result.stderr


@pytest.mark.parametrize(
    ("state", "where", "problem"),
    [
        ("  backend: postgres\n", "gateway.yaml:4: state", "backend 'postgres'; installed"),
        ("  backend: sqlite\n  paht: state.db\n", "gateway.yaml:4: state", "option 'paht'"),
        ("  backend: sqlite\n  applied_window: 0\n", "gateway.yaml:6: state.applied_window", ""),
    ],
)
def test_check_names_a_bad_state_section_and_its_line(
    tmp_path: Path, state: str, where: str, problem: str
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: crashy:application\n"
        "gateways:\n"
        "  workers: {type: mqtt, broker: 'mqtt://127.0.0.1:1'}\n"
        f"state:\n{state}"
    )
    result = run_cli("check", str(config))
    assert result.returncode == 2, result.stdout
    assert where in result.stderr
    assert problem in result.stderr
    assert not (tmp_path / "state.db").exists()  # check opens no store


def test_run_names_an_application_that_cannot_be_imported(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: no_such_module:application\n"
        "gateways:\n"
        "  workers: {type: mqtt, broker: 'mqtt://127.0.0.1:1'}\n"
    )
    result = run_cli("run", str(config))
    assert result.returncode == 2
    assert "no_such_module" in result.stderr


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (
            "application: crashy:application\n"
            "layer: {type: memory, options: {capacty: 10}}\n"
            "gateways:\n  workers: {type: mqtt}\n",
            "gateway.yaml:2: layer",
            "unknown option 'capacty'",
        ),
        (
            "application: crashy:application\ngateways:\n  workers:\n    type: mqtt5\n",
            "gateway.yaml:4: gateways.workers.type",
            "unknown gateway type 'mqtt5'",
        ),
        (
            "application: crashy:__doc__\ngateways:\n  workers: {type: mqtt}\n",
            "gateway.yaml:1: application",
            "not an ASGI app",
        ),
    ],
)
def test_check_locates_what_only_importing_can_find(
    tmp_path: Path, text: str, where: str, what: str
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(text)
    result = run_cli("check", str(config))
    assert result.returncode == 2
    assert where in result.stderr
    assert what in result.stderr


def test_a_gateway_that_cannot_start_exits_1_and_says_why(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "gateway.yaml"
        config.write_text(
            "application: crashy:application\n"
            "gateways:\n"
            f"  workers: {{type: mqtt, broker: 'embedded://127.0.0.1:{port}'}}\n"
        )
        result = run_cli("run", str(config))
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr


#: What the README's first command does not install: its extras are embedded and webchat.
NOT_INSTALLED_BY_THE_FIRST_COMMAND = (
    "redis",
    "msgpack",
    "slack_bolt",
    "slack_sdk",
    "uvicorn",
    "aiogram",
    "hikari",
    "nio",
    "slixmpp",
    "pydle",
    "zulip",
    "channels",
    "django",
)


def test_the_readmes_first_command_needs_only_the_embedded_and_webchat_extras() -> None:
    """``pip install -e '.[embedded,webchat]'`` and nothing else: the thermostat example's
    file checks, with every other extra's library made unimportable."""
    blocked = ", ".join(repr(name) for name in NOT_INSTALLED_BY_THE_FIRST_COMMAND)
    code = (
        "import sys\n"
        f"for name in ({blocked}):\n"
        "    sys.modules[name] = None  # import raises ImportError, as if not installed\n"
        "from gateways.daemon.cli import main\n"
        "sys.argv = ['asgi-gateway', 'check', 'examples/thermostat/gateway.yaml']\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
