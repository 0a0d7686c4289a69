"""Hostile Socket Mode messages to the Slack gateway's real Socket Mode client (slack_sdk,
unchanged), from the Slack test server's socket: frames that are not JSON, envelopes of any
shape, payloads with parts replaced. Each costs at most one WARNING line, no traceback; a
malformed envelope with an id is acknowledged (so Slack stops sending it); the socket stays
up and a genuine message is still answered after."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from hostile_helpers import LogCheck, answered, chatbot_application, hostile_settings
from hypothesis import example, given
from hypothesis import strategies as st
from slack_strategies import (
    action_payloads,
    command_forms,
    event_bodies,
    genuine_event,
    json_values,
)

from gateways.slack import SlackGateway
from gateways.slack.options import SlackGatewayOptions
from gateways.testing.slack_server import SlackTestServer, reaction

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Slack:
    def __init__(self, server: SlackTestServer, gateway: SlackGateway) -> None:
        self.server = server
        self.gateway = gateway
        self.secrets = (server.app_token, server.bot_token)

    async def settle(self) -> None:
        """Send a genuine envelope and wait for its ack: what came before it was read."""
        envelope = await self.server.send_event(reaction("C0CHAN0001", "1.0", "eyes"))
        await self.server.wait_ack(envelope, within=5)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack() -> AsyncIterator[Slack]:
    async with SlackTestServer.started(ack_timeout=30) as server:
        options = SlackGatewayOptions(
            bot_token=server.bot_token,
            app_token=server.app_token,
            base_url=server.api_url,
            connect_timeout=5,
            api_timeout=5,
        )
        gateway = SlackGateway("slack", chatbot_application(), options)
        await gateway.start()
        await server.wait_connected()
        try:
            yield Slack(server, gateway)
        finally:
            await gateway.stop(drain_timeout=2)


kinds = st.sampled_from(["events_api", "slash_commands", "interactive"]) | json_values.filter(
    lambda kind: kind not in ("disconnect", "hello")
)
envelopes = st.fixed_dictionaries(
    {"type": kinds, "payload": event_bodies | action_payloads | command_forms | json_values},
    optional={
        "envelope_id": st.uuids().map(str) | json_values,
        "retry_attempt": json_values,
        "retry_reason": st.just("timeout") | json_values,
        "accepts_response_payload": json_values,
    },
)
frames = st.one_of(
    envelopes.map(json.dumps),
    json_values.filter(lambda value: value not in ({"type": "disconnect"},)).map(json.dumps),
    st.text(max_size=60).map(lambda text: "{" + text),
    st.text(max_size=60),
)


@hostile_settings(200)
@given(frame=frames)
@example(frame="{not json")
@example(frame='{"type": "events_api", "payload": null, "envelope_id": "e0"}')
@example(frame="{" * 5000)  # RecursionError in json.loads
@example(frame='{"type": "events_api", "envelope_id": "e1", "payload": "x"}')
@example(frame='{"type": "events_api", "envelope_id": 5, "payload": {}}')
@example(frame='{"type": "events_api", "envelope_id": "e2", "payload": {}, "retry_reason": 1}')
async def test_hostile_frames_cost_one_line_and_keep_the_socket(
    slack: Slack, caplog: pytest.LogCaptureFixture, frame: str
) -> None:
    log = LogCheck(caplog, slack.secrets)
    connections = slack.server.connection_count
    log.mark()
    await slack.server.send_raw(frame)
    await slack.settle()
    log.check(frame[:300])
    assert slack.server.connection_count == connections
    assert slack.gateway.connected


async def test_a_malformed_envelope_is_acknowledged_once(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    log = LogCheck(caplog, slack.secrets)
    log.mark()
    frame = {"type": "events_api", "envelope_id": "bad-1", "payload": {"event": "x"}}
    await slack.server.send_raw(json.dumps(frame))
    assert (await slack.server.wait_ack("bad-1")).payload is None
    await slack.settle()
    log.check(frame)
    assert [r.levelname for r in log.records()] == ["WARNING"]


async def test_a_genuine_message_is_answered_after_the_hostile_batch(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    log = LogCheck(caplog, slack.secrets)
    before = len(slack.server.calls_to("chat.postMessage"))
    await slack.server.send_envelope("events_api", genuine_event("<@U0BOT00001> still here"))
    await answered(slack.server, before, "still here")
    log.check("the dispatch of the hostile batch", warnings=10_000)
    assert slack.server.live_connections == 1
