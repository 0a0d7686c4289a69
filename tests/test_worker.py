"""Workers: the application for named channels, in one daemon (``workers:``) and alone
(``asgi-gateway worker``): scope and events, hand-off from a consumer, crash isolation,
drain on stop, and the command's errors."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config import load_config, load_config_text
from gateways import GatewayError
from gateways.daemon import Daemon, Worker, WorkerOptions
from layer import InMemoryChannelLayer

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "daemon_apps"


class JobApp:
    """A raw ASGI application for ``channel`` scopes recording what each instance handled.

    A message's ``action``: ``"boom"`` raises (after ``release`` is set), ``"close"`` sends
    ``channel.close``, ``"slow"`` sleeps 0.05 s first; every other message is handled.
    """

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.handled: list[tuple[int, str, Any]] = []
        self.first_events: list[dict[str, Any]] = []
        self.disconnects: list[tuple[int, str]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        number = len(self.scopes)
        first = True
        while True:
            event = await receive()
            if first:
                self.first_events.append(event)
                first = False
            if event["type"] == "channel.disconnect":
                self.disconnects.append((number, event["reason"]))
                return
            action = event.get("action")
            if action == "boom":
                await self.release.wait()
                raise RuntimeError(f"job {event['id']} failed")
            if action == "close":
                await send({"type": "channel.close"})
            if action == "slow":
                await asyncio.sleep(0.05)
            self.handled.append((number, scope["channel"], event["id"]))

    def ids(self) -> list[Any]:
        return [job for _, _, job in self.handled]


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def start_worker() -> Any:
    """``await start_worker(app, channels, layer, **options)``: a started Worker, stopped at
    teardown."""
    started: list[Worker] = []

    async def start(app: Any, channels: list[str], layer: Any, **options: Any) -> Worker:
        worker = Worker(app, channels, channel_layer=layer, options=WorkerOptions(**options))
        started.append(worker)
        async with asyncio.timeout(5):
            await worker.start()
        return worker

    yield start
    for worker in started:
        async with asyncio.timeout(10):
            await worker.stop(drain_timeout=2)


async def test_one_instance_per_channel_with_the_channel_scope_and_the_messages_as_events(
    start_worker: Any,
) -> None:
    layer = InMemoryChannelLayer()
    app = JobApp()
    await start_worker(app, ["thumbnails", "reports"], layer)
    await layer.send("thumbnails", {"type": "thumbnail.generate", "id": 1})
    await layer.send("reports", {"type": "report.make", "id": 2})
    await layer.send("thumbnails", {"type": "thumbnail.generate", "id": 3})
    await until(lambda: len(app.handled) == 3)
    assert sorted(app.handled) == [(1, "thumbnails", 1), (1, "thumbnails", 3), (2, "reports", 2)]
    scopes = {scope["channel"]: scope for scope in app.scopes}
    assert scopes["thumbnails"]["type"] == "channel"
    assert scopes["thumbnails"]["gateway"] == "worker"
    assert scopes["thumbnails"]["asgi"]["version"] == "3.0"
    assert scopes["reports"]["channel_layer"] is layer
    # No connect event: as in Channels, the first event is the first message, as sent.
    assert app.first_events[0] in (
        {"type": "thumbnail.generate", "id": 1},
        {"type": "report.make", "id": 2},
    )


async def test_a_crashing_job_is_logged_with_its_channel_and_later_jobs_are_all_handled(
    start_worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    received = 0

    class CountingLayer(InMemoryChannelLayer):
        def receive(self, channel: str) -> asyncio.Future[dict[str, Any]]:
            def count(_: object) -> None:
                nonlocal received
                received += 1

            future = super().receive(channel)
            future.add_done_callback(count)
            return future

    layer = CountingLayer()
    app = JobApp()
    app.release.clear()
    await start_worker(app, ["jobs"], layer, max_queued_events=3)
    await layer.send("jobs", {"type": "job", "id": "bad", "action": "boom"})
    for job in range(1, 6):
        await layer.send("jobs", {"type": "job", "id": job})
    # The instance is stuck on "bad"; 3 jobs wait in its queue, a 4th in the worker's hand.
    await until(lambda: received == 5)
    for _ in range(5):
        await asyncio.sleep(0)
    assert received == 5, "the worker took more than its queue holds"
    app.release.set()
    await until(lambda: len(app.handled) == 5)
    # A fresh instance took over every job the crashed one had not read, in order.
    assert app.handled == [(2, "jobs", job) for job in range(1, 6)]
    crash = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "'jobs'" in crash[0].getMessage()
    assert crash[0].exc_info is not None
    assert "job bad failed" in str(crash[0].exc_info[1])
    # And the worker goes on serving.
    await layer.send("jobs", {"type": "job", "id": 6})
    await until(lambda: len(app.handled) == 6)


async def test_stop_hands_over_what_was_taken_then_disconnects_with_shutdown() -> None:
    layer = InMemoryChannelLayer()
    app = JobApp()
    worker = Worker(app, ["jobs"], channel_layer=layer, options=WorkerOptions(max_queued_events=2))
    await worker.start()
    for job in range(5):
        await layer.send("jobs", {"type": "job", "id": job, "action": "slow"})
    await until(lambda: len(app.handled) >= 1)
    async with asyncio.timeout(10):
        await worker.stop(drain_timeout=5)
    # Jobs the worker had taken from the layer were all handled before the disconnect, in
    # order; what it had not taken is still in the layer for the next worker.
    taken = len(app.handled)
    assert app.ids() == list(range(taken))
    assert app.disconnects == [(1, "shutdown")]
    left = []
    while True:
        try:
            async with asyncio.timeout(0.1):
                left.append((await layer.receive("jobs"))["id"])
        except TimeoutError:
            break
    assert app.ids() + left == list(range(5))


async def test_channel_close_ends_the_instance_and_the_next_message_opens_a_fresh_one(
    start_worker: Any,
) -> None:
    layer = InMemoryChannelLayer()
    app = JobApp()
    await start_worker(app, ["jobs"], layer)
    await layer.send("jobs", {"type": "job", "id": 1, "action": "close"})
    await until(lambda: app.disconnects == [(1, "closed")])
    await layer.send("jobs", {"type": "job", "id": 2})
    await until(lambda: len(app.handled) == 2)
    assert app.handled == [(1, "jobs", 1), (2, "jobs", 2)]


async def test_a_message_without_a_type_is_skipped_and_logged(
    start_worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    layer = InMemoryChannelLayer()
    app = JobApp()
    await start_worker(app, ["jobs"], layer)
    # Our layer refuses such messages on send; another process's layer might not.
    layer_send = InMemoryChannelLayer.send
    with pytest.raises(TypeError):
        await layer_send(layer, "jobs", {"id": 0})
    await layer.send("jobs", {"type": "channel.disconnect", "id": 0})
    await layer.send("jobs", {"type": "job", "id": 1})
    await until(lambda: len(app.handled) == 1)
    assert app.handled == [(1, "jobs", 1)]
    assert "skipped a message on channel 'jobs'" in caplog.text


async def test_sending_anything_but_channel_close_is_an_error_naming_the_channel(
    start_worker: Any,
) -> None:
    errors: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        try:
            await send({"type": "mqtt.publish", "topic": "x", "payload": b""})
        except GatewayError as exc:
            errors.append(exc)

    layer = InMemoryChannelLayer()
    await start_worker(app, ["jobs"], layer)
    await layer.send("jobs", {"type": "job"})
    await until(lambda: len(errors) == 1)
    assert "'mqtt.publish'" in str(errors[0])
    assert "'jobs'" in str(errors[0])


async def test_receive_failures_are_retried_and_logged(
    start_worker: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateways.daemon import worker as worker_module

    monkeypatch.setattr(worker_module, "RECEIVE_RETRY_INITIAL", 0.01)
    failures = 2

    class FlakyLayer(InMemoryChannelLayer):
        async def receive(self, channel: str) -> dict[str, Any]:  # type: ignore[override]
            nonlocal failures
            if failures:
                failures -= 1
                raise ConnectionError("layer down")
            return await super().receive(channel)

    layer = FlakyLayer()
    app = JobApp()
    await start_worker(app, ["jobs"], layer)
    await layer.send("jobs", {"type": "job", "id": 1})
    await until(lambda: len(app.handled) == 1)
    assert "receive from channel 'jobs' failed" in caplog.text
    assert "layer down" in caplog.text


def test_bad_channel_names_and_no_layer_are_refused() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(GatewayError, match="at least one channel"):
        Worker(app, [], channel_layer=InMemoryChannelLayer())
    with pytest.raises(GatewayError, match="'a!b' is a process-specific"):
        Worker(app, ["a!b"], channel_layer=InMemoryChannelLayer())
    with pytest.raises(GatewayError, match="'sp ace'"):
        Worker(app, ["sp ace"], channel_layer=InMemoryChannelLayer())
    with pytest.raises(GatewayError, match="needs a channel layer"):
        Worker(app, ["jobs"], channel_layer=None)
    worker = Worker(app, ["a", "b", "a"], channel_layer=InMemoryChannelLayer())
    assert worker.channels == ["a", "b"]


# -- in one daemon: `workers:` beside an MQTT gateway, on the in-memory layer ---------------


async def test_a_consumer_hands_off_to_the_daemons_worker_and_publishes_its_answer(
    mosquitto: Any, mqtt_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(APPS))
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(
        "application: thumbnails:application\n"
        "layer: {type: memory}\n"
        "gateways:\n"
        f"  images: {{type: mqtt, broker: '{mosquitto.url}', route_qos: 1}}\n"
        "workers:\n"
        "  channels: [thumbnails]\n"
    )
    daemon = Daemon.from_config(load_config(config_file))
    assert [w.channels for w in daemon.workers] == [["thumbnails"]]  # type: ignore[attr-defined]
    serving = asyncio.create_task(daemon.serve())
    try:
        async with mqtt_client(mosquitto.url) as probe:
            await probe.subscribe("images/+/thumbnail", qos=1)
            answer = await _publish_until_answered(probe, "images/cat", b"meow")
            assert answer == b"MEOW by worker/thumbnails"
            await probe.publish("images/dog", b"boom", qos=1)  # the worker's consumer raises
            await probe.publish("images/dog", b"woof", qos=1)
            message = await probe.next(within=10)
            assert (message.topic.value, message.payload) == (
                "images/dog/thumbnail",
                b"WOOF by worker/thumbnails",
            )
    finally:
        daemon.request_stop()
        async with asyncio.timeout(20):
            await serving


async def _publish_until_answered(probe: Any, topic: str, payload: bytes) -> bytes:
    """Publish until the answer comes: the gateway may still be subscribing."""
    async with asyncio.timeout(15):
        while True:
            await probe.publish(topic, payload, qos=1)
            try:
                async with asyncio.timeout(0.5):
                    message = await probe.received.get()
            except TimeoutError:
                continue
            assert message.topic.value == f"{topic}/thumbnail"
            result: bytes = message.payload
            return result


# -- the command --------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateways", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(APPS)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


#: A layer processes share.
SHARED_LAYER = (
    "application: thumbnails:application\nlayer: {type: redis}\ngateways: {images: {type: mqtt}}\n"
)


@pytest.mark.parametrize(
    ("channels", "what"),
    [
        ([], "name at least one channel"),
        (["thumbnails", "reply!abc"], "'reply!abc' is a process-specific channel name"),
        (["thumb nails"], "Channel name 'thumb nails' is invalid"),
        (["x" * 100], "names must be shorter than 100 characters"),
    ],
)
def test_the_worker_command_refuses_bad_channels_with_exit_2(
    tmp_path: Path, channels: list[str], what: str
) -> None:
    config_file = tmp_path / "worker.yaml"
    config_file.write_text(SHARED_LAYER)
    result = run_cli("worker", str(config_file), *channels)
    assert result.returncode == 2, result.stderr
    assert what in result.stderr


def test_the_worker_command_refuses_an_in_memory_layer_saying_why(tmp_path: Path) -> None:
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(
        "application: thumbnails:application\n"
        "layer:\n"
        "  type: memory\n"
        "gateways: {images: {type: mqtt}}\n"
    )
    result = run_cli("worker", str(config_file), "thumbnails")
    assert result.returncode == 2
    assert "gateway.yaml:3: layer.type" in result.stderr
    assert "lives in one process" in result.stderr
    assert "workers: section" in result.stderr


def test_check_lists_the_workers_channels(tmp_path: Path) -> None:
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(
        "application: thumbnails:application\n"
        "gateways: {images: {type: mqtt}}\n"
        "workers: {channels: [thumbnails, reports]}\n"
    )
    result = run_cli("check", str(config_file))
    assert result.returncode == 0, result.stderr
    assert "gateways: images (mqtt); workers: thumbnails, reports" in result.stdout


def test_worker_options_are_validated_with_path_and_line() -> None:
    config = load_config_text(
        "application: a:b\nworkers:\n  channels: [jobs]\n  max_queued_events: 0\n",
        "gateway.yaml",
    )
    with pytest.raises(Exception, match=r"gateway.yaml:4: workers.max_queued_events"):
        config.validate_worker_options(WorkerOptions)
