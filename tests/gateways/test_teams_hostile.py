"""Hostile activities: whatever JSON the messaging endpoint gets with a valid token, reading
it never raises past the 400 (``Activity`` refuses it, or ``TeamsInbound`` makes well-formed
events of it), and over loopback the answer is a 202 or a 400, never a 5xx nor a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import test_teams_helpers as helpers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateways.teams.inbound import Activity, TeamsInbound
from gateways.testing.teams import TeamsTestServer, personal, user

teams = helpers.teams
teams_options = helpers.teams_options
start_teams = helpers.start_teams

SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "type", "id", "serviceUrl", "channelId", "from", "conversation", "recipient", "text",
    "entities", "attachments", "replyToId", "value", "channelData", "reactionsAdded",
    "reactionsRemoved",
]  # fmt: skip
ENVELOPE = {"type", "serviceUrl", "channelId", "conversation"}
account = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=12)},
    optional={"name": values, "role": values, "conversationType": values},
)
activities = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["message", "messageReaction", "invoke", "typing"]) | values,
        "serviceUrl": st.just("https://smba.example/teams/") | values,
        "channelId": st.just("msteams") | values,
        "conversation": account | values,
    },
    optional=dict.fromkeys([k for k in KEYS if k not in ENVELOPE], account | values),
)


class Host:
    def __init__(self) -> None:
        self.bot = {"id": "28:bot", "name": "Bot"}

    def conversation_for(self, **where: Any) -> tuple[str, dict[str, Any]]:
        thread = where["thread_id"]
        conversation = {
            "id": where["channel_id"],
            "kind": "thread" if thread else where["kind"],
            "name": where["name"],
            "thread_id": thread,
        }
        return where["channel_id"] + (f"/{thread}" if thread else ""), conversation

    async def dispatch_chat(self, key: str, conversation: Any, event: Any) -> None:
        raise NotImplementedError


@SETTINGS
@given(activities)
def test_any_activity_is_refused_or_made_into_well_formed_events(body: dict[str, Any]) -> None:
    try:
        activity = Activity.model_validate(body)
    except ValidationError:
        return
    for key, conversation, event in TeamsInbound(Host()).convert(activity):  # type: ignore[arg-type]
        assert isinstance(key, str)
        assert key
        assert conversation["kind"] in ("direct", "group", "thread")
        assert event["type"] in ("chat.message", "chat.reaction", "chat.action")
        assert isinstance(event["user"]["id"], str)
        assert event["user"]["identity"] == f"teams:{event['user']['id']}"
        json.dumps(event)  # plain data all through


BODIES: list[Any] = [
    {},
    [],
    None,
    "message",
    {"type": "message"},
    {"type": 7, "serviceUrl": "x", "channelId": "msteams", "conversation": {"id": "c"}},
    {"type": "message", "serviceUrl": None, "channelId": "msteams", "conversation": {}},
    {"type": "message", "conversation": {"id": "a:1"}, "from": {"id": ""}},
    {"type": "message", "entities": "not a list", "conversation": {"id": "a:1"}},
    {"type": "messageReaction", "reactionsAdded": [1, 2], "conversation": {"id": "a:1"}},
]


@pytest.mark.parametrize("index", range(len(BODIES)))
async def test_hostile_bodies_over_loopback_are_a_400_or_taken(
    teams: TeamsTestServer,
    recording_app: Any,
    start_teams: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    index: int,
) -> None:
    app = recording_app()
    await start_teams(app)
    body = dict(BODIES[index]) if isinstance(BODIES[index], dict) else BODIES[index]
    if isinstance(body, dict) and index >= 7:  # make the rest a plausible envelope
        body.setdefault("serviceUrl", teams.service_url)
        body.setdefault("channelId", "msteams")
    with caplog.at_level(logging.INFO, logger="gateways"):
        answer = await teams.deliver_raw(json.dumps(body).encode(), teams.keys.token())
    assert answer.status in (202, 400)
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
    alice = user("Alice")
    teams.post_message(personal(alice), alice, "still served")
    await app.wait_for(
        lambda: any(e.get("text") == "still served" for log in app.logs for e in log.events)
    )
