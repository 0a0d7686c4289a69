"""Several daemons end to end: examples/cluster's two daemons and its worker as
subprocesses, sharing a real redis-server (the channel layer) and a real Mosquitto; and the
deployment guide shows exactly those files and commands."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import Process

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "examples" / "cluster"
FILES = ("daemon-a.yaml", "daemon-b.yaml", "worker.yaml")
DEPLOYMENT = (ROOT / "docs" / "deployment.md").read_text()


def command_of(file: str) -> list[str]:
    """The command in the file's first line, ``# asgi-gateway run examples/...``."""
    first = (CLUSTER / file).read_text().splitlines()[0]
    match = re.fullmatch(r"# asgi-gateway (.+)", first)
    assert match, f"{file} does not start with its command: {first!r}"
    return shlex.split(match.group(1))


@pytest.fixture
def cluster(redis_server: Any, mosquitto: Any) -> Iterator[dict[str, Process]]:
    env = {
        "REDIS_URL": redis_server.url,
        "MQTT_URL": mosquitto.url,
        "LOG_LEVEL": "INFO",
        "CLUSTER_LEASE": "2",
    }
    started = {file: Process(command_of(file), env) for file in FILES}
    yield started
    for process in started.values():
        process.stop(signal.SIGKILL)


def payload(message: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(message.payload)
    return result


async def test_two_daemons_and_a_worker_share_the_work(
    cluster: dict[str, Process], mosquitto: Any, mqtt_client: Any
) -> None:
    daemons = {cluster[f"daemon-{d}.yaml"].process.pid for d in "ab"}
    async with mqtt_client(mosquitto.url, protocol=5) as probe:
        for topic_filter in ("sensors/+/ack", "sensors/+/broadcast", "jobs/+/result"):
            await probe.subscribe(topic_filter, qos=1)

        # Until both daemons have subscribed, the broker gives every reading to the one that
        # has: publish probes until each daemon has acknowledged one.
        acked_by: set[str] = set()
        async with asyncio.timeout(40):
            warmup = 0
            while acked_by != daemons:
                await probe.publish(f"sensors/warmup-{warmup}/reading", b"0", qos=1)
                warmup += 1
                try:
                    message = await asyncio.wait_for(probe.received.get(), 0.5)
                except TimeoutError:
                    continue
                acked_by.add(payload(message)["daemon"])
        await asyncio.sleep(0.3)  # acks of the last probes still on their way
        while not probe.received.empty():
            probe.received.get_nowait()

        # 1. The shared subscription spreads readings over both daemons.
        sensors = [f"s{n}" for n in range(20)]
        for sensor in sensors:
            await probe.publish(f"sensors/{sensor}/reading", b"21.5", qos=1)
        acks = {}
        for message in await probe.collect(len(sensors), within=15):
            assert message.topic.matches("sensors/+/ack")
            acks[message.topic.value.split("/")[1]] = payload(message)["daemon"]
        assert set(acks) == set(sensors)
        assert set(acks.values()) == daemons, f"not spread over both daemons: {acks}"

        # 2. A group_send from one daemon reaches the group's members on both.
        await probe.publish("fleet/broadcast", b"firmware 2.1", qos=1)
        seen: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(15):
            while not set(sensors) <= set(seen):
                message = await probe.received.get()
                assert message.topic.matches("sensors/+/broadcast")
                sensor = message.topic.value.split("/")[1]
                assert sensor not in seen, f"{sensor} got the broadcast twice"
                seen[sensor] = payload(message)
        assert {s: seen[s]["daemon"] for s in sensors} == acks
        assert {seen[s]["text"] for s in sensors} == {"firmware 2.1"}
        assert len({seen[s]["origin"] for s in sensors}) == 1  # sent by one daemon

        # 3. A consumer hands a job to the worker, which sends the result back over the layer.
        await probe.publish("jobs/j1", json.dumps({"numbers": [1, 2, 3.5]}), qos=1)
        async with asyncio.timeout(15):
            while True:
                message = await probe.received.get()
                if message.topic.value == "jobs/j1/result":
                    break
        result = payload(message)
        assert result["sum"] == 6.5
        assert result["done_by"] == "worker/jobs"
        assert result["worker_pid"] == cluster["worker.yaml"].process.pid
        assert result["accepted_by"] in daemons

        # 4. Daemon A dies: its sensors move to B once A's lease (2 s here) runs out, each
        # with its count from the state store. A's supervisor starts it again, and the
        # readings the broker kept for A's session reach their sensors' owner too. Every
        # sensor's second reading counts 2.
        dead = cluster["daemon-a.yaml"]
        dead.stop(signal.SIGKILL)
        for sensor in sensors:
            await probe.publish(f"sensors/{sensor}/reading", b"22.0", qos=1)
        cluster["daemon-a.yaml"] = Process(dead.args, dead.env)
        second = {}
        async with asyncio.timeout(30):
            while set(second) != set(sensors):
                message = await probe.received.get()
                if message.topic.matches("sensors/+/ack"):
                    second[message.topic.value.split("/")[1]] = payload(message)
        assert {s: a["count"] for s, a in second.items()} == dict.fromkeys(sensors, 2)
        # The sensors of the dead daemon were taken over by a live one (B, or A restarted).
        live = {cluster[f"daemon-{d}.yaml"].process.pid for d in "ab"}
        assert {a["daemon"] for a in second.values()} <= live

    # SIGTERM stops all three gracefully.
    for file, process in cluster.items():
        assert process.stop() == 0, f"{file}:\n{process.output}"
        assert "Received SIGTERM: stopping gracefully" in process.output
    assert "serving channels jobs" in cluster["worker.yaml"].output
    taken = cluster["daemon-a.yaml"].output + cluster["daemon-b.yaml"].output
    assert "Cluster: took scope" in taken  # from the dead daemon, by B or A restarted


# -- docs/deployment.md shows these files and commands ------------------------------------


def doc_blocks(language: str) -> list[str]:
    """The guide's blocks in ``language`` but those marked ``<!-- file: PATH -->``, which
    tests/test_docs_blocks.py holds against their own files."""
    return re.findall(rf"(?<!-->\n)```{language}\n(.*?)```", DEPLOYMENT, flags=re.DOTALL)


def without_comments(text: str) -> list[str]:
    lines = (re.sub(r"(^|[ \t]+)#.*", "", line).rstrip() for line in text.splitlines())
    return [line for line in lines if line.strip()]


def test_every_yaml_block_of_the_deployment_guide_is_in_an_example_file() -> None:
    files = {file: without_comments((CLUSTER / file).read_text()) for file in FILES}
    blocks = doc_blocks("yaml")
    assert blocks
    for block in blocks:
        lines = without_comments(textwrap.dedent(block))
        assert any("\n".join(lines) in "\n".join(content) for content in files.values()), (
            f"the guide shows YAML that no file of examples/cluster has:\n{block}"
        )


def test_every_python_block_of_the_deployment_guide_is_from_cluster_py() -> None:
    source = (CLUSTER / "cluster.py").read_text()
    blocks = doc_blocks("python")
    assert blocks
    for block in blocks:
        assert textwrap.dedent(block).strip() in source, f"not in cluster.py:\n{block}"


def test_every_command_of_the_deployment_guide_is_an_example_files_command() -> None:
    commands = {"asgi-gateway " + shlex.join(command_of(file)) for file in FILES}
    shown = [line for block in doc_blocks("sh") for line in without_comments(block)]
    assert set(shown) == commands
