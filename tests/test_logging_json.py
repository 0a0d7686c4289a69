"""JSON logs end to end: ``asgi-gateway run --log-format json`` (and ``logging: {format:
json}``, and ``asgi-gateway worker``) as a subprocess against a real Mosquitto (and
redis-server), each line of its output parsed with ``json.loads``."""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import Process, client, next_message, until_reply

from gateways.testing import free_port

SECRET = "s3cr3t-hunter2"

#: An application whose consumer leaks SECRET in a log message and in an exception.
LEAKY_APP = f"""
import logging

from consumers import MqttConsumer, ProtocolTypeRouter, TopicRouter, route

logger = logging.getLogger("leaky")


class Leaky(MqttConsumer):
    async def receive(self, message):
        if message["payload"] == b"leak":
            logger.warning("connecting to redis://:{SECRET}@cache:6379/0")
            raise RuntimeError("cannot reach mqtt://admin:{SECRET}@broker:1883")
        await self.publish("leak/done", message["payload"])


application = ProtocolTypeRouter({{"mqtt": TopicRouter([route("leak/in", Leaky.as_asgi())])}})
"""


@pytest.fixture
def start() -> Iterator[Callable[..., Process]]:
    """``start(args, env)``: ``python -m gateways <args>``; every one is killed at teardown."""
    started: list[Process] = []

    def run(args: list[str], env: dict[str, str]) -> Process:
        process = Process(args, env)
        started.append(process)
        return process

    yield run
    for process in started:
        process.stop(signal.SIGKILL)


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line of ``output`` as a JSON object (a line that is not one fails the test)."""
    records = []
    for line in output.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        for key in ("time", "level", "logger", "message"):
            assert key in record, line
        assert datetime.fromisoformat(record["time"]).utcoffset() is not None, line
        records.append(record)
    return records


def read_until(process: Process, text: str, timeout: float = 20) -> str:
    """Read ``process``'s output (kept in ``process.output``) up to the line holding ``text``."""
    stream = process.process.stdout
    assert stream is not None
    fd = stream.fileno()  # read unbuffered, so stop() then reads the rest
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:  # timed out, or the process exited
            break
        process.output += chunk.decode(errors="replace")
        for line in process.output.splitlines():
            if text in line:
                return line
    raise AssertionError(f"no line with {text!r} within {timeout} s:\n{process.output}")


def crashy_config(tmp_path: Path, logging: str = "") -> Path:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: crashy:application\n"
        "gateways:\n"
        "  workers:\n"
        "    type: mqtt\n"
        "    broker: ${MQTT_URL}\n" + logging
    )
    return config


async def test_run_log_format_json_writes_one_object_per_line_with_gateway_and_scope(
    mosquitto: Any, start: Callable[..., Process], tmp_path: Path
) -> None:
    daemon = start(
        ["run", str(crashy_config(tmp_path)), "--log-format", "json"], {"MQTT_URL": mosquitto.url}
    )
    async with client(mosquitto, "work/+/done") as c:
        await until_reply(c, "work/b", b"x", "work/b/done")
        await c.publish("work/b", b"boom", qos=1)
        await c.publish("work/b", b"z", qos=1)  # a fresh instance: the crash was handled
        assert (await next_message(c, "work/b/done")).payload == b"1:z"
    assert daemon.stop() == 0, daemon.output

    records = json_lines(daemon.output)
    (crash,) = [r for r in records if "raised" in r["message"]]
    assert crash["level"] == "ERROR"
    assert crash["logger"] == "gateways.base"
    assert crash["gateway"] == "workers"
    assert crash["scope"] == "work/b"
    assert "RuntimeError: worker b hit a bad payload" in crash["exception"]
    assert list(crash)[:4] == ["time", "level", "logger", "message"]
    messages = [r["message"] for r in records]
    assert "Gateway 'workers' (mqtt) started" in messages
    assert "Received SIGTERM: stopping gracefully" in messages
    assert {r["level"] for r in records} >= {"INFO", "ERROR"}


async def test_logging_format_json_in_the_file_and_the_flag_overrides_it(
    mosquitto: Any, start: Callable[..., Process], tmp_path: Path
) -> None:
    config = crashy_config(tmp_path, "logging:\n  format: json\n")
    env = {"MQTT_URL": mosquitto.url}
    from_file = start(["run", str(config)], env)
    as_text = start(["run", str(config), "--log-format", "text"], env)
    async with client(mosquitto, "work/+/done") as c:
        await until_reply(c, "work/a", b"x", "work/a/done")
    assert from_file.stop() == 0, from_file.output
    assert as_text.stop() == 0, as_text.output

    started = [r for r in json_lines(from_file.output) if r["message"].endswith("started")]
    assert started == [
        {
            "time": started[0]["time"],
            "level": "INFO",
            "logger": "gateways.daemon.server",
            "message": "Gateway 'workers' (mqtt) started",
        }
    ]
    # --log-format text: the default %-style format, not JSON.
    text = as_text.output.splitlines()
    started_line = "INFO gateways.daemon.server: Gateway 'workers' (mqtt) started"
    assert any(line.endswith(started_line) for line in text)
    assert not any(line.startswith("{") for line in text)


async def test_secrets_stay_out_of_json_lines(
    mosquitto: Any, start: Callable[..., Process], tmp_path: Path
) -> None:
    (tmp_path / "leaky.py").write_text(LEAKY_APP)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: leaky:application\n"
        "gateways:\n"
        "  devices:\n"
        "    type: mqtt\n"
        "    broker: ${MQTT_URL}\n"
        "  away:\n"  # a broker that is not there, with a password in its URL
        "    type: mqtt\n"
        f"    broker: mqtt://admin:{SECRET}@127.0.0.1:{free_port()}\n"
    )
    daemon = start(
        ["run", str(config), "--log-format", "json", "--log-level", "debug"],
        {"MQTT_URL": mosquitto.url},
    )
    async with client(mosquitto, "leak/done") as c:
        await until_reply(c, "leak/in", b"x", "leak/done")
        await c.publish("leak/in", b"leak", qos=1)
        await c.publish("leak/in", b"after", qos=1)
        assert (await next_message(c, "leak/done")).payload == b"after"
    assert daemon.stop() == 0, daemon.output

    assert SECRET not in daemon.output
    records = json_lines(daemon.output)
    (warning,) = [r for r in records if r["logger"] == "leaky"]
    assert warning["message"] == "connecting to redis://:***@cache:6379/0"
    (crash,) = [r for r in records if "raised" in r["message"]]
    assert (crash["gateway"], crash["scope"]) == ("devices", "leak/in")
    assert "RuntimeError: cannot reach mqtt://admin:***@broker:1883" in crash["exception"]
    away = [r for r in records if "cannot connect to mqtt://admin:***@127.0.0.1" in r["message"]]
    assert away, "the unreachable broker was never logged"


async def test_worker_log_format_json(
    redis_server: Any, start: Callable[..., Process], tmp_path: Path
) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text(
        "application: thumbnails:application\n"
        "layer:\n"
        "  type: redis\n"
        "  options: {hosts: ['${REDIS_URL}']}\n"
        "workers: {channels: [thumbnails]}\n"
    )
    worker = start(
        ["worker", str(config), "thumbnails", "--log-format", "json"],
        {"REDIS_URL": redis_server.url},
    )
    serving = read_until(worker, "Worker 'worker' serving channels thumbnails")
    assert json.loads(serving)["logger"] == "gateways.daemon.worker"
    assert worker.stop() == 0, worker.output
    records = json_lines(worker.output)
    assert "Received SIGTERM: stopping gracefully" in [r["message"] for r in records]
