"""The conformance kit itself: a correct in-process gateway passes it, broken ones fail it."""

from __future__ import annotations

from typing import Any

import pytest

from gateways.base import Gateway, GatewayError, GatewayOptions, ScopeInstance
from gateways.testing.conformance import ConformanceHarness, GatewayConformance
from layer.types import ASGIApp, DisconnectReason, Message


class LoopbackGateway(Gateway):
    """A gateway whose "transport" is a method call: ``trigger`` dispatches directly."""

    protocol = "loop"

    async def start_transport(self) -> None:
        pass

    async def close_transport(self) -> None:
        pass

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        raise GatewayError(f"gateway {self.name!r} cannot do {message['type']!r}")


class SilentGateway(LoopbackGateway):
    """Broken: drops outgoing events it does not know without a word."""

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        pass


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


class TestLoopbackConformance(GatewayConformance):
    @pytest.fixture
    def harness(self) -> LoopbackHarness:
        return LoopbackHarness()


async def test_the_kit_fails_a_gateway_that_drops_unknown_events_silently() -> None:
    kit = GatewayConformance()
    kit.step_timeout = 1.0
    with pytest.raises(pytest.fail.Exception, match="the send error did not happen"):
        await kit.test_an_unknown_outgoing_event_is_a_clear_error_and_the_scope_goes_on(
            LoopbackHarness(SilentGateway)
        )


async def test_the_kit_fails_a_gateway_that_evicts_without_a_disconnect() -> None:
    kit = GatewayConformance()
    with pytest.raises(AssertionError, match=r"expected exactly one loop\.disconnect, last"):
        await kit.test_eviction_keeps_max_scopes_and_ends_the_least_recently_used(
            LoopbackHarness(CancellingGateway)
        )


class OneScopeHarness(LoopbackHarness):
    """Broken: every index goes to the same scope key."""

    async def trigger(self, gateway: Gateway, index: int) -> None:
        await super().trigger(gateway, 0)


async def test_the_kit_fails_a_harness_whose_indexes_share_a_scope() -> None:
    kit = GatewayConformance()
    with pytest.raises(AssertionError, match="scope indexes 0 and 1 both went to"):
        await kit.test_a_crashing_instance_ends_only_its_own_scope(OneScopeHarness())
