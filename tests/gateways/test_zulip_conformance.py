"""The Zulip gateway passes the gateway conformance kit against ZulipTestServer, each scope a
stream topic whose messages arrive through the event queue's long polls, replies going out
with ``POST /messages``, and a malformed event in the queue dropped with a warning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import test_zulip_helpers as helpers

from gateways.base import Gateway
from gateways.testing.conformance import ConformanceHarness, TransportConformance
from gateways.testing.zulip import ZulipTestServer
from gateways.zulip import ZulipGateway
from layer.types import ASGIApp, Message


class ZulipHarness(ConformanceHarness):
    """Scope ``index`` is the topic ``kit`` of the stream ``200 + index`` (``kit-<index>``);
    Alice posts in it and the server hands the event to the gateway's next long poll."""

    def __init__(self, server: ZulipTestServer) -> None:
        self.server = server

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return ZulipGateway("zulip", application, helpers.options_for(self.server, **options))

    def _stream(self, index: int) -> int:
        stream_id = 200 + index
        if stream_id not in self.server.streams:
            self.server.add_stream(stream_id, f"kit-{index}")
        return stream_id

    async def trigger(self, gateway: Gateway, index: int) -> None:
        self.server.post_stream_message(
            self._stream(index), "kit", helpers.ALICE, f"message for scope {index}"
        )

    def reply(self, index: int) -> Message | None:
        return {"type": "chat.send", "text": f"pong {index}"}

    async def received_reply(self, gateway: Gateway, index: int) -> None:
        def arrived() -> bool:
            return any(
                s.text == f"pong {index}" and s.topic == "kit"
                for s in self.server.sent_to(stream_id=self._stream(index))
            )

        await self.server.wait_until(arrived, f"pong {index}", 10)

    async def trigger_malformed(self, gateway: Gateway, index: int) -> bool:
        self._stream(index)
        self.server.push_event({"type": "message", "message": {"id": "not a number"}})
        self.server.push_event({"type": "reaction", "op": "add"})
        return True


class TestZulipConformance(TransportConformance):
    step_timeout = 5.0

    @pytest.fixture
    async def harness(self) -> AsyncIterator[ZulipHarness]:
        async with ZulipTestServer.started(heartbeat=2.0) as server:
            server.add_user(helpers.ALICE, "Alice Liddell")
            yield ZulipHarness(server)
