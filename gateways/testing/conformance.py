"""The gateway conformance kit: what every adapter must do with scopes, checked with pytest.

An adapter's author subclasses ``GatewayConformance`` in a test module and gives it a
``harness`` fixture, a ``ConformanceHarness`` that builds the gateway under test and makes
traffic arrive through its real transport::

    from gateways.testing.conformance import ConformanceHarness, GatewayConformance

    class LinesHarness(ConformanceHarness):
        def make_gateway(self, application, options):
            return LinesGateway("lines", application, LinesOptions(port=0, **options))

        async def trigger(self, gateway, index):
            await send_a_line(gateway.port, f"k{index} hello")   # through the transport

    class TestLinesConformance(GatewayConformance):
        @pytest.fixture
        def harness(self):
            return LinesHarness()

The kit then checks, against the running gateway (needs pytest-asyncio), the rules of
``docs/adapters.md`` ("The rules the kit checks"), ``RULES`` here; every failure names the
rule it checks:

1. ``<protocol>.connect`` comes first and ``<protocol>.disconnect`` last, exactly once each,
   for every way a scope ends: ``idle``, ``evicted``, ``closed``, ``shutdown``;
2. an idle scope ends after ``idle_timeout`` and the next traffic opens a fresh instance;
3. no more than ``max_scopes`` scopes are ever live; the least recently used is evicted;
4. an application instance that raises ends only its own scope;
5. ``stop()`` waits for instances to return after their disconnect event (the drain), then
   cancels those still running after ``drain_timeout``, and leaves no task behind;
6. an outgoing event type the adapter does not know raises ``GatewayError`` naming the type
   in the application's ``send``, and the scope goes on;
7. what the application sends reaches the transport (``TransportConformance``, with the
   harness's optional ``reply`` and ``received_reply``);
8. a malformed input is logged (a warning or worse) and every scope goes on
   (``TransportConformance``, with the harness's optional ``trigger_malformed``);
9. the harness maps distinct indexes to distinct scope keys, the same index to the same key.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar

import pytest

from gateways.base import Gateway, GatewayError
from layer.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "RULES",
    "ConformanceHarness",
    "GatewayConformance",
    "KitApplication",
    "ScopeRecord",
    "TransportConformance",
]

#: Seconds any one step of a conformance test may take before the test fails (the default of
#: ``GatewayConformance.step_timeout``).
STEP_TIMEOUT = 10.0

#: The rules of docs/adapters.md ("The rules the kit checks") by number, as each failure
#: names them.
RULES: dict[int, str] = {
    1: "connect first, disconnect last, once each, for every end",
    2: "an idle scope ends and the next message opens a fresh one",
    3: "at most max_scopes live, the least recently used evicted",
    4: "a crashing instance ends only its own scope",
    5: "stop() drains, then cancels, and leaves no task",
    6: "an unknown outgoing event is a GatewayError naming its type",
    7: "what the application sends reaches the transport",
    8: "a malformed input is logged and every scope goes on",
    9: "the harness maps distinct indexes to distinct scope keys",
}


def rule(number: int) -> str:
    """How a failure names a rule: ``docs/adapters.md rule 6 (an unknown ...)``."""
    return f"docs/adapters.md rule {number} ({RULES[number]})"


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

    # -- optional hooks: each enables one more check (rules 7 and 8) ------------------------

    def reply(self, index: int) -> Message | None:
        """An event the application sends in scope ``index`` whose effect the harness can
        see at the transport's far end (``{"type": "lines.send", "text": "pong"}``).

        Returns:
            The event; ``None`` (the default) skips rule 7.
        """
        return None

    async def received_reply(self, gateway: Gateway, index: int) -> None:
        """Wait until the effect of ``reply(index)`` arrived through the transport (the
        line came back, the broker got the PUBLISH); fail (raise ``AssertionError``) if
        what arrived is wrong. The kit bounds the wait by ``step_timeout``."""
        raise NotImplementedError(f"{type(self).__name__} has reply() but no received_reply()")

    async def trigger_malformed(self, gateway: Gateway, index: int) -> bool:
        """Make one malformed input for scope ``index`` arrive through the real transport
        (a line that does not parse, a payload that is not JSON where JSON is required).

        Returns:
            Whether it did; ``False`` (the default) skips rule 8.
        """
        return False


class ScopeRecord:
    """One application instance as the kit saw it."""

    def __init__(self, key: str, scope: Scope) -> None:
        self.key = key
        self.scope = scope
        self.events: list[Message] = []
        self.send_errors: list[Exception] = []
        #: Event types whose ``await send(...)`` returned without an error.
        self.sent: list[str] = []
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
    event type no adapter knows), ``"reply"`` (send ``reply_event``), ``"slow"`` (take 0.2 s
    to return after its disconnect event) or ``"stubborn"`` (never return after it).
    """

    def __init__(self) -> None:
        self.gateway: Gateway | None = None
        #: What an instance armed with ``"reply"`` sends.
        self.reply_event: Message | None = None
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
                elif action in ("unknown", "reply"):
                    message = (
                        self.reply_event
                        if action == "reply" and self.reply_event is not None
                        else {"type": f"{protocol}.no_such_event"}
                    )
                    try:
                        await send(message)
                    except Exception as exc:
                        record.send_errors.append(exc)
                    else:
                        record.sent.append(str(message["type"]))
                action = None if action in ("close", "unknown", "reply") else action
        finally:
            record.returned = True


async def wait_until(
    predicate: Callable[[], bool], what: str, within: float = STEP_TIMEOUT, *, checks: int = 0
) -> None:
    """Poll ``predicate`` every 10 ms; fail the test naming ``what`` (and rule ``checks`` of
    docs/adapters.md, if given) after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while not predicate():  # noqa: ASYNC110 (state set by other tasks, polled)
                await asyncio.sleep(0.01)
    except TimeoutError:
        where = f", {rule(checks)}" if checks else ""
        pytest.fail(f"conformance{where}: {what} did not happen within {within} s")


class _Warnings(logging.Handler):
    """The records of level WARNING or worse logged while it is installed (on the root)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _warnings() -> Iterator[_Warnings]:
    handler = _Warnings()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


class GatewayConformance:
    """Base test class: subclass it and provide a ``harness`` fixture (a ``ConformanceHarness``).

    Every test runs the gateway through its real transport; each step is bounded by
    ``step_timeout`` seconds (``STEP_TIMEOUT``, 10, unless a subclass sets it), so a hang
    fails fast. Each failure names the rule of docs/adapters.md it checks (``RULES``).
    """

    #: Seconds each step may take; lower it for a transport that answers fast.
    step_timeout: float = STEP_TIMEOUT

    async def wait_until(self, predicate: Callable[[], bool], what: str, checks: int = 0) -> None:
        """Wait until ``predicate()`` holds, failing the test after ``step_timeout`` s and
        naming rule ``checks`` of docs/adapters.md."""
        await wait_until(predicate, what, self.step_timeout, checks=checks)

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    @contextlib.asynccontextmanager
    async def running(
        self, harness: ConformanceHarness, **options: Any
    ) -> AsyncIterator[tuple[Gateway, KitApplication]]:
        app = KitApplication()
        gateway = harness.make_gateway(app, options)
        app.gateway = gateway
        async with asyncio.timeout(self.step_timeout):
            await gateway.start()
        try:
            yield gateway, app
        finally:
            async with asyncio.timeout(self.step_timeout + 5):
                await gateway.stop(drain_timeout=2)
            await harness.close()

    async def open(
        self,
        harness: ConformanceHarness,
        gateway: Gateway,
        app: KitApplication,
        index: int,
        checks: int = 1,
    ) -> ScopeRecord:
        """Trigger traffic for ``index`` and return the instance that received it; a failure
        to deliver names rule ``checks``."""
        before = len(app.records)
        seen = {id(r): len(r.events) for r in app.records}
        await harness.trigger(gateway, index)

        def delivered() -> bool:
            return any(len(r.events) > seen.get(id(r), 1) for r in app.records)

        await self.wait_until(delivered, f"delivery of the message for scope index {index}", checks)
        fresh = app.records[before:]
        fed = (r for r in app.records if len(r.events) > seen.get(id(r), 0))
        record = fresh[-1] if fresh else next(fed)
        known = app.index_keys.get(index)
        if known is None:
            others = {k: i for i, k in app.index_keys.items()}
            assert record.key not in others, (
                f"conformance, {rule(9)}: harness: scope indexes {others.get(record.key)} and "
                f"{index} both went to scope key {record.key!r}; distinct indexes must be "
                "distinct scopes"
            )
            app.index_keys[index] = record.key
        else:
            assert record.key == known, (
                f"conformance, {rule(9)}: harness: scope index {index} went to "
                f"{record.key!r}, before to {known!r}"
            )
        return record

    def assert_lifecycle(self, record: ScopeRecord, protocol: str, reason: str) -> None:
        """``<protocol>.connect`` first and ``<protocol>.disconnect`` (``reason``) last, once."""
        connect, disconnect = f"{protocol}.connect", f"{protocol}.disconnect"
        types = record.types
        where = f"conformance, {rule(1)}: scope {record.key!r} received {types}"
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
            await self.wait_until(lambda: record.returned, "the closed instance's return", 1)
            self.assert_lifecycle(record, gateway.protocol, "closed")
            assert record.key not in gateway.instances, (
                f"conformance, {rule(1)}: scope {record.key!r} is still live after "
                f"{gateway.protocol}.close"
            )

    async def test_idle_scope_ends_and_the_next_message_opens_a_fresh_one(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness, idle_timeout=0.3) as (gateway, app):
            first = await self.open(harness, gateway, app, 0, checks=2)
            await self.wait_until(lambda: first.returned, "the idle timeout (0.3 s)", 2)
            self.assert_lifecycle(first, gateway.protocol, "idle")
            second = await self.open(harness, gateway, app, 0, checks=2)
            where = f"conformance, {rule(2)}: scope {first.key!r}"
            assert second is not first, f"{where}: the message after the idle end went nowhere"
            assert second.key == first.key, f"{where}: came back as {second.key!r}"
            assert second.types[0] == f"{gateway.protocol}.connect", (
                f"{where}: the fresh instance received {second.types}, not a connect first"
            )

    async def test_eviction_keeps_max_scopes_and_ends_the_least_recently_used(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness, max_scopes=2) as (gateway, app):
            records = []
            for index in range(3):
                records.append(await self.open(harness, gateway, app, index, checks=3))
                assert len(gateway.instances) <= 2, (
                    f"conformance, {rule(3)}: {len(gateway.instances)} scopes live with "
                    f"max_scopes 2: {list(gateway.instances)}"
                )
            await self.wait_until(lambda: records[0].returned, "the eviction of scope 0", 3)
            self.assert_lifecycle(records[0], gateway.protocol, "evicted")
            live, expected = set(gateway.instances), {records[1].key, records[2].key}
            assert live == expected, (
                f"conformance, {rule(3)}: live scopes {sorted(live)}, expected "
                f"{sorted(expected)} (the least recently used, {records[0].key!r}, evicted)"
            )

    async def test_shutdown_sends_disconnect_and_drains(self, harness: ConformanceHarness) -> None:
        async with self.running(harness) as (gateway, app):
            app.arm("slow")
            slow = await self.open(harness, gateway, app, 0, checks=5)
            plain = await self.open(harness, gateway, app, 1, checks=5)
            async with asyncio.timeout(self.step_timeout):
                await gateway.stop(drain_timeout=5)
            for record in (slow, plain):
                assert record.returned, (
                    f"conformance, {rule(5)}: {record} did not return within the drain: "
                    "stop() must wait for instances after their disconnect event"
                )
                self.assert_lifecycle(record, gateway.protocol, "shutdown")
            assert not gateway.instances, (
                f"conformance, {rule(5)}: scopes live after stop(): {list(gateway.instances)}"
            )

    async def test_shutdown_cancels_an_instance_that_does_not_return(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness) as (gateway, app):
            app.arm("stubborn")
            stubborn = await self.open(harness, gateway, app, 0, checks=5)
            task = gateway.instances[stubborn.key].task
            async with asyncio.timeout(self.step_timeout):
                await gateway.stop(drain_timeout=0.2)
            assert task is not None, f"conformance, {rule(5)}: scope {stubborn.key!r}: no task"
            assert task.done(), (
                f"conformance, {rule(5)}: scope {stubborn.key!r}: its task outlived stop()"
            )
            assert stubborn.returned, f"conformance, {rule(5)}: {stubborn} was not ended"
            self.assert_lifecycle(stubborn, gateway.protocol, "shutdown")

    async def test_a_crashing_instance_ends_only_its_own_scope(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness) as (gateway, app):
            app.arm("crash")
            crashed = await self.open(harness, gateway, app, 0, checks=4)
            await self.wait_until(
                lambda: crashed.returned and crashed.key not in gateway.instances,
                "the end of the crashed scope",
                4,
            )
            other = await self.open(harness, gateway, app, 1, checks=4)
            where = f"conformance, {rule(4)}"
            assert other.key in gateway.instances, (
                f"{where}: scope {other.key!r} is not live after another scope crashed"
            )
            again = await self.open(harness, gateway, app, 0, checks=4)
            assert again is not crashed, f"{where}: the crashed instance got a message"
            assert again.types[0] == f"{gateway.protocol}.connect", (
                f"{where}: the fresh instance of {again.key!r} received {again.types}"
            )

    async def test_an_unknown_outgoing_event_is_a_clear_error_and_the_scope_goes_on(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness) as (gateway, app):
            app.arm("unknown")
            record = await self.open(harness, gateway, app, 0, checks=6)
            unknown = f"{gateway.protocol}.no_such_event"
            await self.wait_until(
                lambda: bool(record.send_errors or record.sent),
                f"the end of the application's await send({{'type': {unknown!r}}})",
                6,
            )
            where = f"conformance, {rule(6)}: await send({{'type': {unknown!r}}})"
            assert not record.sent, (
                f"{where} returned: handle_send() must raise GatewayError for an event type "
                "it does not carry out, not ignore it"
            )
            error = record.send_errors[0]
            assert isinstance(error, GatewayError), (
                f"{where} raised {type(error).__name__}: {error}; expected a GatewayError"
            )
            assert unknown in str(error), (
                f"{where} raised GatewayError({str(error)!r}), which does not name {unknown!r}"
            )
            assert record.key in gateway.instances, (
                f"{where}: scope {record.key!r} ended; the error must end nothing"
            )
            again = await self.open(harness, gateway, app, 0, checks=6)
            assert again is record, f"{where}: the next message went to a fresh instance"


class TransportConformance(GatewayConformance):
    """``GatewayConformance`` plus rules 7 and 8, which need the harness's optional hooks
    (``reply`` and ``received_reply``; ``trigger_malformed``): subclass this one instead when
    your harness has them, so that every check runs and none is skipped."""

    async def test_what_the_application_sends_reaches_the_transport(
        self, harness: ConformanceHarness
    ) -> None:
        if harness.reply(0) is None:
            pytest.fail(f"conformance, {rule(7)}: TransportConformance needs the harness's reply()")
        async with self.running(harness) as (gateway, app):
            app.reply_event = harness.reply(0)
            app.arm("reply")
            record = await self.open(harness, gateway, app, 0, checks=7)
            try:
                async with asyncio.timeout(self.step_timeout):
                    await harness.received_reply(gateway, 0)
            except TimeoutError:
                pytest.fail(
                    f"conformance, {rule(7)}: {app.reply_event} did not reach the transport "
                    f"within {self.step_timeout} s (send errors: {record.send_errors})"
                )
            assert not record.send_errors, (
                f"conformance, {rule(7)}: await send({app.reply_event}) raised "
                f"{record.send_errors[0]!r}"
            )

    async def test_a_malformed_input_is_logged_and_the_scope_goes_on(
        self, harness: ConformanceHarness
    ) -> None:
        async with self.running(harness) as (gateway, app):
            record = await self.open(harness, gateway, app, 0, checks=8)
            with _warnings() as logged:
                if not await harness.trigger_malformed(gateway, 0):
                    pytest.fail(
                        f"conformance, {rule(8)}: TransportConformance needs the harness's "
                        "trigger_malformed()"
                    )
                await self.wait_until(
                    lambda: bool(logged.records), "a warning logged for the malformed input", 8
                )
            where = f"conformance, {rule(8)}"
            ended = record.returned or record.key not in gateway.instances
            assert not ended, f"{where}: scope {record.key!r} ended after a malformed input"
            again = await self.open(harness, gateway, app, 0, checks=8)
            assert again is record, f"{where}: the next message went to a fresh instance"
            other = await self.open(harness, gateway, app, 1, checks=8)
            assert other.key in gateway.instances, f"{where}: scope {other.key!r} did not open"
