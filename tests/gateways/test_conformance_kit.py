"""The conformance kit itself: a correct in-process gateway passes it, broken ones fail it."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from gateways.base import Gateway, GatewayError, GatewayOptions, ScopeInstance
from gateways.testing.conformance import (
    RULES,
    ConformanceHarness,
    GatewayConformance,
    TransportConformance,
)
from layer.types import ASGIApp, DisconnectReason, Message

ADAPTERS_MD = Path(__file__).resolve().parents[2] / "docs" / "adapters.md"


class LoopbackGateway(Gateway):
    """A gateway whose "transport" is a method call: ``trigger`` dispatches directly."""

    protocol = "loop"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: What ``loop.reply`` "wrote to the transport": (scope key, event).
        self.replies: list[tuple[str, Message]] = []

    async def start_transport(self) -> None:
        pass

    async def close_transport(self) -> None:
        pass

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        if message["type"] == "loop.reply":
            self.replies.append((instance.key, message))
            return
        raise GatewayError(f"gateway {self.name!r} cannot do {message['type']!r}")

    def malformed(self, index: int) -> None:
        """What the transport does with input that does not parse: log it, go on."""
        logging.getLogger(__name__).warning("Gateway %r: refused input %d", self.name, index)


class SilentGateway(LoopbackGateway):
    """Broken: drops outgoing events it does not know without a word."""

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        pass


class VagueGateway(LoopbackGateway):
    """Broken: its error does not say which event type it cannot do."""

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        raise GatewayError("cannot do that")


class CrashOnBadInputGateway(LoopbackGateway):
    """Broken: a malformed input ends the scope it was meant for."""

    def malformed(self, index: int) -> None:
        instance = self.instances[f"scope-{index}"]
        assert instance.task is not None
        instance.task.cancel()


class CancellingGateway(LoopbackGateway):
    """Broken as asgiref's StatelessServer is: evicts by cancelling, with no disconnect."""

    def end(self, instance: ScopeInstance, reason: DisconnectReason) -> None:
        if reason == "evicted" and instance.task is not None:
            del self.instances[instance.key]
            instance.task.cancel()
            return
        super().end(instance, reason)


class LoopbackHarness(ConformanceHarness):
    def __init__(self, cls: type[LoopbackGateway] = LoopbackGateway) -> None:
        self.cls = cls

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return self.cls("loop", application, GatewayOptions(**options))

    async def trigger(self, gateway: Gateway, index: int) -> None:
        key = f"scope-{index}"
        scope = None if key in gateway.instances else gateway.new_scope(scope_key=key)
        await gateway.dispatch(key, {"type": "loop.message", "n": index}, scope)

    def reply(self, index: int) -> Message | None:
        return {"type": "loop.reply", "text": f"pong {index}"}

    async def received_reply(self, gateway: Gateway, index: int) -> None:
        assert isinstance(gateway, LoopbackGateway)
        while not gateway.replies:
            await asyncio.sleep(0.01)
        assert gateway.replies[0] == (f"scope-{index}", self.reply(index))

    async def trigger_malformed(self, gateway: Gateway, index: int) -> bool:
        assert isinstance(gateway, LoopbackGateway)
        gateway.malformed(index)
        return True


class BareHarness(LoopbackHarness):
    """A harness without the optional hooks, which rules 7 and 8 need."""

    def reply(self, index: int) -> Message | None:
        return None

    async def trigger_malformed(self, gateway: Gateway, index: int) -> bool:
        return False


class TestLoopbackConformance(TransportConformance):
    @pytest.fixture
    def harness(self) -> LoopbackHarness:
        return LoopbackHarness()


async def test_the_kit_fails_a_gateway_that_drops_unknown_events_silently() -> None:
    kit = GatewayConformance()
    kit.step_timeout = 1.0
    with pytest.raises(AssertionError) as failed:
        await kit.test_an_unknown_outgoing_event_is_a_clear_error_and_the_scope_goes_on(
            LoopbackHarness(SilentGateway)
        )
    assert str(failed.value).startswith(
        "conformance, docs/adapters.md rule 6 (an unknown outgoing event is a GatewayError "
        "naming its type): await send({'type': 'loop.no_such_event'}) returned: handle_send() "
        "must raise GatewayError"
    )


async def test_the_kit_fails_an_error_that_does_not_name_the_event_type() -> None:
    kit = GatewayConformance()
    vague = r"rule 6 .*GatewayError\('cannot do that'\), which does not name 'loop\.no_such"
    with pytest.raises(AssertionError, match=vague):
        await kit.test_an_unknown_outgoing_event_is_a_clear_error_and_the_scope_goes_on(
            LoopbackHarness(VagueGateway)
        )


async def test_the_kit_fails_a_gateway_that_evicts_without_a_disconnect() -> None:
    kit = GatewayConformance()
    with pytest.raises(
        AssertionError, match=r"rule 1 .*expected exactly one loop\.disconnect, last"
    ):
        await kit.test_eviction_keeps_max_scopes_and_ends_the_least_recently_used(
            LoopbackHarness(CancellingGateway)
        )


async def test_the_kit_fails_a_gateway_whose_bad_input_ends_the_scope() -> None:
    kit = TransportConformance()
    kit.step_timeout = 1.0
    with pytest.raises(AssertionError, match=r"rule 8 \(a malformed input is logged"):
        await kit.test_a_malformed_input_is_logged_and_the_scope_goes_on(
            LoopbackHarness(CrashOnBadInputGateway)
        )


async def test_a_silent_timeout_names_the_rule() -> None:
    """A gateway that never delivers fails with the rule the step belonged to."""

    class Deaf(LoopbackHarness):
        async def trigger(self, gateway: Gateway, index: int) -> None:
            pass

    kit = GatewayConformance()
    kit.step_timeout = 0.3
    with pytest.raises(pytest.fail.Exception, match=r"conformance, docs/adapters.md rule 2 "):
        await kit.test_idle_scope_ends_and_the_next_message_opens_a_fresh_one(Deaf())


async def test_rules_7_and_8_name_the_hook_a_harness_lacks() -> None:
    kit = TransportConformance()
    with pytest.raises(pytest.fail.Exception, match=r"rule 7 .*needs the harness's reply\(\)"):
        await kit.test_what_the_application_sends_reaches_the_transport(BareHarness())
    with pytest.raises(pytest.fail.Exception, match=r"rule 8 .*trigger_malformed\(\)"):
        await kit.test_a_malformed_input_is_logged_and_the_scope_goes_on(BareHarness())


def test_every_rule_of_the_kit_is_in_docs_adapters_md() -> None:
    """The kit names its rules by number and title: docs/adapters.md lists the same."""
    text = ADAPTERS_MD.read_text()
    section = text.split("## The rules the kit checks", 1)[1].split("\n## ", 1)[0]
    listed = dict(re.findall(r"^(\d+)\. \*\*(.+?)\*\*", section, re.MULTILINE))
    assert {int(n): title for n, title in listed.items()} == RULES


class OneScopeHarness(LoopbackHarness):
    """Broken: every index goes to the same scope key."""

    async def trigger(self, gateway: Gateway, index: int) -> None:
        await super().trigger(gateway, 0)


async def test_the_kit_fails_a_harness_whose_indexes_share_a_scope() -> None:
    kit = GatewayConformance()
    with pytest.raises(AssertionError, match=r"rule 9 .*scope indexes 0 and 1 both went to"):
        await kit.test_a_crashing_instance_ends_only_its_own_scope(OneScopeHarness())
