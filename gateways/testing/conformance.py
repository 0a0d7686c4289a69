"""The gateway conformance kit: what every adapter must do with scopes, checked with pytest.

An adapter's author subclasses ``GatewayConformance`` in a test module and gives it a
``harness`` fixture, a ``ConformanceHarness`` that builds the gateway under test and makes
traffic arrive through its real transport::

    from gateways.testing.conformance import ConformanceHarness, GatewayConformance

    class LinesHarness(ConformanceHarness):
        def make_gateway(self, application, options):
            return LinesGateway("lines", application, LinesOptions(port=self.port, **options))

        async def trigger(self, gateway, index):
            await send_a_line(self.port, f"conversation-{index}")   # through the transport

    class TestLinesConformance(GatewayConformance):
        @pytest.fixture
        def harness(self):
            return LinesHarness()

The kit then checks, against the running gateway (needs pytest-asyncio):

- ``<protocol>.connect`` comes first and ``<protocol>.disconnect`` last, exactly once each,
  for every way a scope ends: ``idle``, ``evicted``, ``closed``, ``shutdown``;
- an idle scope ends after ``idle_timeout`` and the next traffic opens a fresh instance;
- no more than ``max_scopes`` scopes are ever live;
- an application instance that raises ends only its own scope;
- ``stop()`` waits for instances to return after their disconnect event (the drain), then
  cancels those still running after ``drain_timeout``, and leaves no task behind;
- an outgoing event type the adapter does not know raises ``GatewayError`` naming the type
  in the application's ``send``, and the scope goes on.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest

from gateways.base import Gateway, GatewayError
from layer.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ConformanceHarness", "GatewayConformance", "KitApplication", "ScopeRecord"]

#: Seconds any one step of a conformance test may take before the test fails.
STEP_TIMEOUT = 10.0


class ConformanceHarness(abc.ABC):
    """What the kit needs from an adapter's tests: build its gateway, make traffic arrive."""

    @abc.abstractmethod
    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        """Build (do not start) the gateway under test.

        Args:
            application: The kit's ASGI application.
            options: ``GatewayOptions`` keys the test sets (``idle_timeout``, ``max_scopes``,
                ``disconnect_grace``), to merge into the adapter's own options.
        """

    @abc.abstractmethod
    async def trigger(self, gateway: Gateway, index: int) -> None:
        """Make one inbound message arrive through the real transport for scope ``index``.

        Distinct indexes (0, 1, 2, ...) must map to distinct scope keys, and the same index
        to the same key each time (a topic, a conversation).
        """

    async def close(self) -> None:  # noqa: B027 (a hook: most harnesses hold nothing)
        """Release what the harness holds (clients, servers); called after each test."""


class ScopeRecord:
    """One application instance as the kit saw it."""

    def __init__(self, key: str, scope: Scope) -> None:
        self.key = key
        self.scope = scope
        self.events: list[Message] = []
        self.send_errors: list[Exception] = []
        self.returned = False

    @property
    def types(self) -> list[str]:
        return [str(event["type"]) for event in self.events]

    def __repr__(self) -> str:
        return f"<ScopeRecord {self.key!r} {self.types} returned={self.returned}>"


class KitApplication:
    """The kit's ASGI application: records each instance and acts as the test arms it.

    ``arm(action)`` sets what the *next* new instance does on its first inbound message:
    ``"close"`` (send ``<protocol>.close``), ``"crash"`` (raise), ``"unknown"`` (send an
    event type no adapter knows), ``"slow"`` (take 0.2 s to return after its disconnect
    event) or ``"stubborn"`` (never return after it).
    """

    def __init__(self) -> None:
        self.gateway: Gateway | None = None
        self.records: list[ScopeRecord] = []
        #: The scope key each index of the harness went to.
        self.index_keys: dict[int, str] = {}
        self._armed: str | None = None

    def arm(self, action: str) -> None:
        self._armed = action

    def of(self, key: str) -> list[ScopeRecord]:
        """Every instance the scope ``key`` had, oldest first."""
        return [record for record in self.records if record.key == key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.gateway is None:
            raise GatewayError("KitApplication.gateway is not set")
        key = next(k for k, i in self.gateway.instances.items() if i.scope is scope)
        record = ScopeRecord(key, scope)
        self.records.append(record)
        action, self._armed = self._armed, None
        protocol = self.gateway.protocol
        try:
            while True:
                event = await receive()
                record.events.append(event)
                kind = event["type"]
                if kind == f"{protocol}.disconnect":
                    if action == "slow":
                        await asyncio.sleep(0.2)
                    elif action == "stubborn":
                        await asyncio.Event().wait()
                    return
                if kind == f"{protocol}.connect":
                    continue
                if action == "crash":
                    raise RuntimeError("a consumer bug, raised on purpose by the conformance kit")
                if action == "close":
                    await send({"type": f"{protocol}.close"})
                elif action == "unknown":
                    try:
                        await send({"type": f"{protocol}.no_such_event"})
                    except Exception as exc:
                        record.send_errors.append(exc)
                action = None if action in ("close", "unknown") else action
        finally:
            record.returned = True


async def wait_until(
    predicate: Callable[[], bool], what: str, within: float = STEP_TIMEOUT
) -> None:
    """Poll ``predicate`` every 10 ms; fail the test naming ``what`` after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while not predicate():  # noqa: ASYNC110 (state set by other tasks, polled)
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"conformance: {what} did not happen within {within} s")


class GatewayConformance:
    """Base test class: subclass it and provide a ``harness`` fixture (a ``ConformanceHarness``).

    Every test runs the gateway through its real transport; each step is bounded by
    ``STEP_TIMEOUT`` seconds, so a hang fails fast.
    """

    #: Seconds each step may take; lower it for a transport that answers fast.
    step_timeout: float = STEP_TIMEOUT

    async def wait_until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait until ``predicate()`` holds, failing the test after ``step_timeout`` s."""
        await wait_until(predicate, what, self.step_timeout)

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    @contextlib.asynccontextmanager
    async def running(
        self, harness: ConformanceHarness, **options: Any
    ) -> AsyncIterator[tuple[Gateway, KitApplication]]:
        app = KitApplication()
        gateway = harness.make_gateway(app, options)
        app.gateway = gateway
        async with asyncio.timeout(STEP_TIMEOUT):
            await gateway.start()
        try:
            yield gateway, app
        finally:
            async with asyncio.timeout(STEP_TIMEOUT + 5):
                await gateway.stop(drain_timeout=2)
            await harness.close()

    async def open(
        self, harness: ConformanceHarness, gateway: Gateway, app: KitApplication, index: int
    ) -> ScopeRecord:
        """Trigger traffic for ``index`` and return the instance that received it."""
        before = len(app.records)
        seen = {id(r): len(r.events) for r in app.records}
        await harness.trigger(gateway, index)

        def delivered() -> bool:
            return any(len(r.events) > seen.get(id(r), 1) for r in app.records)

        await self.wait_until(delivered, f"delivery of the message for scope index {index}")
        fresh = app.records[before:]
        fed = (r for r in app.records if len(r.events) > seen.get(id(r), 0))
        record = fresh[-1] if fresh else next(fed)
        known = app.index_keys.get(index)
        if known is None:
            others = {k: i for i, k in app.index_keys.items()}
            assert record.key not in others, (
                f"harness: scope indexes {others.get(record.key)} and {index} both went to "
                f"scope key {record.key!r}; distinct indexes must be distinct scopes"
            )
            app.index_keys[index] = record.key
        else:
            assert record.key == known, (
                f"harness: scope index {index} went to {record.key!r}, before to {known!r}"
            )
        return record

    def assert_lifecycle(self, record: ScopeRecord, protocol: str, reason: str) -> None:
        """``<protocol>.connect`` first and ``<protocol>.disconnect`` (``reason``) last, once."""
        connect, disconnect = f"{protocol}.connect", f"{protocol}.disconnect"
        types = record.types
        where = f"scope {record.key!r} received {types}"
        assert types[:1] == [connect], f"{where}: expected exactly one {connect}, first"
        assert types.count(connect) == 1, f"{where}: expected exactly one {connect}, first"
        expected_last = f"{where}: expected exactly one {disconnect}, last (reason {reason!r})"
        assert types[-1:] == [disconnect], expected_last
        assert types.count(disconnect) == 1, expected_last
        assert record.events[-1]["reason"] == reason, (
            f"{where}: {disconnect} has reason {record.events[-1]['reason']!r}, expected {reason!r}"
        )

    # -- the checks ----------------------------------------------------------------------

    async def test_closed_scope_gets_connect_first_and_disconnect_last(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness) as (gateway, app):
            app.arm("close")
            record = await self.open(harness, gateway, app, 0)
            await self.wait_until(lambda: record.returned, "the closed instance's return")
            self.assert_lifecycle(record, gateway.protocol, "closed")
            assert record.key not in gateway.instances

    async def test_idle_scope_ends_and_the_next_message_opens_a_fresh_one(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness, idle_timeout=0.3) as (gateway, app):
            first = await self.open(harness, gateway, app, 0)
            await self.wait_until(lambda: first.returned, "the idle timeout")
            self.assert_lifecycle(first, gateway.protocol, "idle")
            second = await self.open(harness, gateway, app, 0)
            assert second is not first
            assert second.key == first.key
            assert second.types[0] == f"{gateway.protocol}.connect"

    async def test_eviction_keeps_max_scopes_and_ends_the_least_recently_used(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness, max_scopes=2) as (gateway, app):
            records = []
            for index in range(3):
                records.append(await self.open(harness, gateway, app, index))
                assert len(gateway.instances) <= 2
            await self.wait_until(lambda: records[0].returned, "the eviction of scope 0")
            self.assert_lifecycle(records[0], gateway.protocol, "evicted")
            assert set(gateway.instances) == {records[1].key, records[2].key}

    async def test_shutdown_sends_disconnect_and_drains(self, harness: ConformanceHarness) -> None:
        async with self.running(harness) as (gateway, app):
            app.arm("slow")
            slow = await self.open(harness, gateway, app, 0)
            plain = await self.open(harness, gateway, app, 1)
            async with asyncio.timeout(STEP_TIMEOUT):
                await gateway.stop(drain_timeout=5)
            for record in (slow, plain):
                assert record.returned, record  # drained: it finished, not cancelled
                self.assert_lifecycle(record, gateway.protocol, "shutdown")
            assert not gateway.instances

    async def test_shutdown_cancels_an_instance_that_does_not_return(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness) as (gateway, app):
            app.arm("stubborn")
            stubborn = await self.open(harness, gateway, app, 0)
            task = gateway.instances[stubborn.key].task
            async with asyncio.timeout(STEP_TIMEOUT):
                await gateway.stop(drain_timeout=0.2)
            assert task is not None
            assert task.done(), f"scope {stubborn.key!r}: its task outlived stop()"
            assert stubborn.returned
            self.assert_lifecycle(stubborn, gateway.protocol, "shutdown")

    async def test_a_crashing_instance_ends_only_its_own_scope(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness) as (gateway, app):
            app.arm("crash")
            crashed = await self.open(harness, gateway, app, 0)
            await self.wait_until(
                lambda: crashed.returned and crashed.key not in gateway.instances,
                "the end of the crashed scope",
            )
            other = await self.open(harness, gateway, app, 1)
            assert other.key in gateway.instances
            again = await self.open(harness, gateway, app, 0)
            assert again is not crashed
            assert again.types[0] == f"{gateway.protocol}.connect"

    async def test_an_unknown_outgoing_event_is_a_clear_error_and_the_scope_goes_on(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness) as (gateway, app):
            app.arm("unknown")
            record = await self.open(harness, gateway, app, 0)
            await self.wait_until(lambda: bool(record.send_errors), "the send error")
            error = record.send_errors[0]
            assert isinstance(error, GatewayError), error
            assert f"{gateway.protocol}.no_such_event" in str(error)
            assert record.key in gateway.instances
            again = await self.open(harness, gateway, app, 0)
            assert again is record
