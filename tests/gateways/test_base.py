"""The gateway base: scope lifecycle, ordering, bounds, crash isolation and drain."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gateways.base import Gateway, GatewayError, GatewayOptions, ScopeInstance
from layer.types import Message, Receive, Scope, Send


class LoopbackGateway(Gateway):
    """A transport-less gateway: tests feed it events and read what the application sent."""

    protocol = "test"

    def __init__(self, application: Any, **options: Any) -> None:
        super().__init__("loop", application, GatewayOptions(**options))
        self.sent: list[tuple[str, Message]] = []
        self.transport_closed = False

    async def start_transport(self) -> None:
        pass

    async def close_transport(self) -> None:
        self.transport_closed = True

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        if message["type"] != "test.out":
            raise GatewayError(f"unknown event type {message['type']!r}")
        self.sent.append((instance.key, dict(message)))

    async def feed(self, key: str, **event: Any) -> None:
        scope = None if key in self.instances else self.new_scope(key=key)
        await self.dispatch(key, {"type": "test.in", **event}, scope)


class Recorder:
    """An ASGI app recording every event per scope key; ends on disconnect."""

    def __init__(self) -> None:
        self.events: dict[str, list[Message]] = {}
        self.finished: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        log = self.events.setdefault(scope["key"], [])
        try:
            while True:
                event = await receive()
                log.append(event)
                if event["type"] == "test.disconnect":
                    return
                if event.get("echo"):
                    await send({"type": "test.out", "text": event["echo"]})
                if event.get("close"):
                    await send({"type": "test.close"})
                if event.get("crash"):
                    raise RuntimeError("consumer bug")
        finally:
            self.finished.append(scope["key"])


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


async def test_connect_first_then_events_in_order_one_instance_per_key(recorder: Recorder) -> None:
    gw = LoopbackGateway(recorder)
    await gw.start()
    for n in range(3):
        await gw.feed("a", n=n)
        await gw.feed("b", n=n)
    await settle()
    assert [e["type"] for e in recorder.events["a"]] == ["test.connect"] + ["test.in"] * 3
    assert [e.get("n") for e in recorder.events["a"][1:]] == [0, 1, 2]
    assert [e.get("n") for e in recorder.events["b"][1:]] == [0, 1, 2]
    assert set(gw.instances) == {"a", "b"}
    await gw.stop(drain_timeout=1)


async def test_scope_has_protocol_keys() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        while (await receive())["type"] != "test.disconnect":
            pass

    layer = object()
    gw = LoopbackGateway(app)
    gw.channel_layer = layer
    await gw.start()
    await gw.feed("k")
    await settle()
    assert seen[0]["type"] == "test"
    assert seen[0]["gateway"] == "loop"
    assert seen[0]["asgi"]["version"] == "3.0"
    assert seen[0]["channel_layer"] is layer
    await gw.stop(drain_timeout=1)


async def test_send_reaches_handle_send_and_unknown_type_raises_in_app() -> None:
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "test.out", "text": "hi"})
        try:
            await send({"type": "test.bogus"})
        except GatewayError as exc:
            errors.append(exc)
        while (await receive())["type"] != "test.disconnect":
            pass

    gw = LoopbackGateway(app)
    await gw.start()
    await gw.feed("k")
    await settle()
    assert gw.sent == [("k", {"type": "test.out", "text": "hi"})]
    assert "test.bogus" in str(errors[0])
    await gw.stop(drain_timeout=1)


@pytest.mark.parametrize("reason", ["idle", "evicted", "closed", "shutdown"])
async def test_every_end_sends_disconnect_with_its_reason_last(
    recorder: Recorder, reason: str
) -> None:
    options: dict[str, Any] = {}
    if reason == "idle":
        options["idle_timeout"] = 0.05
    if reason == "evicted":
        options["max_scopes"] = 1
    gw = LoopbackGateway(recorder, **options)
    await gw.start()
    await gw.feed("a", close=(reason == "closed"))
    if reason == "evicted":
        await gw.feed("b")
    if reason == "shutdown":
        await gw.stop(drain_timeout=1)
    async with asyncio.timeout(2):
        while "a" not in recorder.finished:
            await asyncio.sleep(0.01)
    events = recorder.events["a"]
    assert events[0]["type"] == "test.connect"
    assert events[-1] == {"type": "test.disconnect", "reason": reason}
    assert [e["type"] for e in events].count("test.disconnect") == 1
    assert "a" not in gw.instances
    await gw.stop(drain_timeout=1)


async def test_eviction_keeps_at_most_max_scopes_and_drops_least_recently_used(
    recorder: Recorder,
) -> None:
    gw = LoopbackGateway(recorder, max_scopes=2)
    await gw.start()
    await gw.feed("a")
    await gw.feed("b")
    await gw.feed("a")  # "b" is now the least recently used
    await gw.feed("c")
    assert list(gw.instances) == ["a", "c"]
    await settle()
    assert recorder.events["b"][-1] == {"type": "test.disconnect", "reason": "evicted"}
    await gw.stop(drain_timeout=1)


async def test_idle_timeout_keeps_active_scopes(recorder: Recorder) -> None:
    gw = LoopbackGateway(recorder, idle_timeout=0.2)
    await gw.start()
    await gw.feed("busy")
    await gw.feed("quiet")
    async with asyncio.timeout(3):
        while "quiet" in gw.instances:
            await gw.feed("busy")
            await asyncio.sleep(0.02)
    assert "busy" in gw.instances
    await gw.stop(drain_timeout=1)


async def test_crash_is_logged_with_gateway_and_key_and_other_scopes_go_on(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    gw = LoopbackGateway(recorder)
    await gw.start()
    await gw.feed("good")
    with caplog.at_level(logging.ERROR, logger="gateways.base"):
        await gw.feed("bad", crash=True)
        await settle()
    assert "bad" not in gw.instances
    record = next(r for r in caplog.records if "raised" in r.getMessage())
    assert "'loop'" in record.getMessage()
    assert "'bad'" in record.getMessage()
    assert record.exc_info is not None
    await gw.feed("good", echo="still here")
    await settle()
    assert gw.sent == [("good", {"type": "test.out", "text": "still here"})]
    # The next event for the crashed key opens a fresh instance.
    await gw.feed("bad", n=1)
    await settle()
    assert recorder.events["bad"][-2:] == [{"type": "test.connect"}, {"type": "test.in", "n": 1}]
    await gw.stop(drain_timeout=1)


async def test_full_queue_applies_back_pressure_and_loses_nothing() -> None:
    release = asyncio.Event()
    got: list[int] = []

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # connect
        await release.wait()
        while True:
            event = await receive()
            if event["type"] == "test.disconnect":
                return
            got.append(event["n"])

    gw = LoopbackGateway(slow, max_queued_events=3)
    await gw.start()
    feeder = asyncio.create_task(_feed_many(gw, 10))
    await asyncio.sleep(0.05)
    assert not feeder.done()  # blocked on the full queue
    release.set()
    async with asyncio.timeout(2):
        await feeder
        while len(got) < 10:
            await asyncio.sleep(0.01)
    assert got == list(range(10))
    await gw.stop(drain_timeout=1)


async def _feed_many(gw: LoopbackGateway, n: int) -> None:
    for i in range(n):
        await gw.feed("k", n=i)


async def test_stop_drains_then_cancels_stragglers_and_leaves_no_task() -> None:
    finished: list[str] = []

    async def polite(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "test.disconnect":
            pass
        await asyncio.sleep(0.05)  # some clean-up work
        finished.append(scope["key"])

    async def stubborn(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            finished.append("cancelled")
            raise

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await (stubborn if scope["key"] == "s" else polite)(scope, receive, send)

    gw = LoopbackGateway(app, disconnect_grace=60)
    await gw.start()
    await gw.feed("p")
    await gw.feed("s")
    await settle()
    async with asyncio.timeout(3):
        await gw.stop(drain_timeout=0.3)
    assert sorted(finished) == ["cancelled", "p"]
    assert gw.transport_closed
    assert not gw.instances
    assert not gw.scopes.ending_tasks()
    # Events after stop are not delivered.
    await gw.feed("late")
    assert "late" not in gw.instances


async def test_receive_after_disconnect_repeats_it(recorder: Recorder) -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "test.disconnect":
            pass
        seen.append(await receive())

    gw = LoopbackGateway(app)
    await gw.start()
    await gw.feed("k")
    await gw.stop(drain_timeout=1)
    assert seen == [{"type": "test.disconnect", "reason": "shutdown"}]


async def test_grace_cancels_an_instance_that_ignores_its_disconnect() -> None:
    cancelled = asyncio.Event()

    async def deaf(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    gw = LoopbackGateway(deaf, max_scopes=1, disconnect_grace=0.05)
    await gw.start()
    await gw.feed("a")
    await gw.feed("b")  # evicts "a"
    async with asyncio.timeout(2):
        await cancelled.wait()
    await gw.stop(drain_timeout=1)


async def test_a_pinned_scope_outlives_idle_timeout_and_eviction(recorder: Recorder) -> None:
    gw = LoopbackGateway(recorder, idle_timeout=0.1, max_scopes=2)
    await gw.start()
    gw.open_scope("alerts", gw.new_scope(key="alerts"), pinned=True)
    await gw.feed("a")
    await gw.feed("b")  # evicts "a", the least recently used scope that is not pinned
    assert list(gw.instances) == ["alerts", "b"]
    async with asyncio.timeout(3):
        while "b" in gw.instances:  # the idle sweep ends "b", passes over "alerts"
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    assert list(gw.instances) == ["alerts"]
    assert recorder.events["alerts"] == [{"type": "test.connect"}]
    await gw.feed("alerts", echo="still here")
    await settle()
    assert gw.sent == [("alerts", {"type": "test.out", "text": "still here"})]
    await gw.stop(drain_timeout=1)
    assert recorder.events["alerts"][-1] == {"type": "test.disconnect", "reason": "shutdown"}
    assert gw.pinned == set()


async def test_eviction_with_every_scope_pinned_is_a_clear_error(recorder: Recorder) -> None:
    gw = LoopbackGateway(recorder, max_scopes=1)
    await gw.start()
    gw.open_scope("alerts", gw.new_scope(key="alerts"), pinned=True)
    with pytest.raises(GatewayError, match="all 1 live scopes are pinned"):
        await gw.feed("a")
    assert list(gw.instances) == ["alerts"]
    await gw.stop(drain_timeout=1)


async def test_a_pinned_scope_that_closes_itself_is_unpinned(recorder: Recorder) -> None:
    gw = LoopbackGateway(recorder)
    await gw.start()
    gw.open_scope("alerts", gw.new_scope(key="alerts"), pinned=True)
    await gw.feed("alerts", close=True)
    await settle()
    assert "alerts" not in gw.instances
    assert gw.pinned == set()
    await gw.stop(drain_timeout=1)


async def test_scope_finished_is_called_once_for_every_end(recorder: Recorder) -> None:
    finished: list[str] = []

    class Tracking(LoopbackGateway):
        def scope_finished(self, instance: ScopeInstance) -> None:
            assert instance.key not in self.instances
            finished.append(instance.key)

    gw = Tracking(recorder, max_scopes=2)
    await gw.start()
    await gw.feed("closed", close=True)
    await gw.feed("crashed", crash=True)
    await gw.feed("evicted")
    await gw.feed("other")
    await gw.feed("last")  # evicts the least recently used
    await settle()
    await gw.stop(drain_timeout=1)
    assert sorted(finished) == ["closed", "crashed", "evicted", "last", "other"]


def test_options_of_another_model_are_refused(recorder: Recorder) -> None:
    from gateways.chat import ChatGatewayOptions
    from gateways.mqtt import MqttGateway

    with pytest.raises(GatewayError, match="options must be MqttGatewayOptions, not ChatGateway"):
        MqttGateway("devices", recorder, ChatGatewayOptions())
