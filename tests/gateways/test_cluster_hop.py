"""A webhook delivery that reaches the daemon which does not own its conversation, in a
cluster (issue 22): two chat gateways of one name, each with a ``Cluster`` of its own (two
daemons' worth) on a real redis-server, and a webhook POSTed to daemon B for a conversation
daemon A owns. B forwards the event to A, and answers the platform only once A's consumer
handled it: Telegram's update is confirmed, Teams' activity answered, then and not before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateways.base import Gateway
from gateways.daemon.cluster import Cluster
from gateways.teams import TeamsGateway, TeamsGatewayOptions
from gateways.telegram import TelegramGateway, TelegramGatewayOptions
from gateways.testing import free_port
from gateways.testing.teams import TeamsTestServer, personal, user
from gateways.testing.telegram import TelegramTestServer
from layer.redis import RedisChannelLayer

SECRET = "hook-Secret_123"


@asynccontextmanager
async def two_daemons(
    redis: Any, make: Callable[[Any, Any], Gateway], apps: list[Any]
) -> AsyncIterator[list[Any]]:
    """Gateways ``make(app, layer)`` for daemons A and B, each with its layer and cluster."""
    clusters: list[Cluster] = []
    gateways: list[Gateway] = []
    try:
        for app in apps:
            layer = RedisChannelLayer(hosts=[redis.url])
            cluster = Cluster(layer, redis.url, lease=10)  # type: ignore[arg-type]
            gateway = make(app, layer)
            gateway.ownership = cluster
            gateway.tracks_handling = True
            cluster.gateways = {gateway.name: gateway}
            await cluster.start()
            clusters.append(cluster)
            async with asyncio.timeout(10):
                await gateway.start()
            gateways.append(gateway)
        yield gateways
    finally:
        for gateway in gateways:
            await gateway.stop(drain_timeout=2)
        for cluster in clusters:
            await cluster.stop()
        for gateway in gateways:
            await gateway.channel_layer.close()  # type: ignore[union-attr]


def held_echo(release: asyncio.Event) -> Callable[[Any, dict[str, Any]], Any]:
    """An echo that holds a message ``hold`` until ``release`` is set."""

    async def echo(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            if event["text"] == "hold":
                await release.wait()
            await log.send({"type": "chat.send", "text": f"echo {event['text']}"})

    return echo


def texts(app: Any) -> list[str]:
    return [e["text"] for log in app.logs for e in log.events if e["type"] == "chat.message"]


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramTestServer]:
    async with TelegramTestServer.started() as server:
        yield server


async def test_a_telegram_update_posted_to_the_other_daemon_is_confirmed_once_the_owner_handled_it(
    telegram: TelegramTestServer, redis_server: Any, recording_app: Any
) -> None:
    release = asyncio.Event()
    apps = [recording_app(held_echo(release)), recording_app(held_echo(release))]
    alice = telegram.add_user(5001, "Alice")

    def make(app: Any, layer: Any) -> TelegramGateway:
        port = free_port()
        options = TelegramGatewayOptions.model_validate(
            {
                "token": telegram.token,
                "api_url": telegram.api_url,
                "mode": "webhook",
                "url": f"http://127.0.0.1:{port}/telegram/hook",
                "secret_token": SECRET,
                "port": port,
                "webhook_wait": 20,
            }
        )
        return TelegramGateway("telegram", app, options, channel_layer=layer)

    def update(update_id: int, text: str) -> bytes:
        message = telegram.new_message(telegram.chats[5001], alice, text)
        return json.dumps({"update_id": update_id, "message": message}).encode()

    async with two_daemons(redis_server, make, apps) as (a, b):
        assert a.webhook_url is not None
        assert b.webhook_url is not None
        # The first update reaches A, which claims Alice's chat.
        first = await telegram.post_raw(a.webhook_url, update(1, "one"), secret=SECRET)
        assert first.status == 200
        assert texts(apps[0]) == ["one"]
        # The second reaches B: forwarded to A, whose consumer holds it.
        answer = asyncio.create_task(
            telegram.post_raw(b.webhook_url, update(2, "hold"), secret=SECRET, within=30)
        )
        await until(lambda: texts(apps[0]) == ["one", "hold"])
        await asyncio.sleep(0.3)
        assert not answer.done()  # B has not answered Telegram: A has not handled it
        release.set()
        assert (await asyncio.wait_for(answer, 10)).status == 200
        assert [s.text for s in telegram.sent] == ["echo one", "echo hold"]
    assert apps[1].logs == []  # no instance of Alice's chat on B


async def test_a_teams_activity_posted_to_the_other_daemon_is_answered_once_the_owner_handled_it(
    redis_server: Any, recording_app: Any
) -> None:
    release = asyncio.Event()
    apps = [recording_app(held_echo(release)), recording_app(held_echo(release))]
    async with TeamsTestServer.started() as teams:

        def make(app: Any, layer: Any) -> TeamsGateway:
            options = TeamsGatewayOptions(**{"port": 0, "activity_wait": 10, **teams.options()})
            return TeamsGateway("teams", app, options, channel_layer=layer)

        alice = user("Alice")
        dm = personal(alice)
        async with two_daemons(redis_server, make, apps) as (a, b):
            teams.bot_url = a.endpoint_url
            first = teams.post_message(dm, alice, "one")
            await teams.wait_delivered(first)
            assert texts(apps[0]) == ["one"]
            # The next activity is POSTed to B: forwarded to A, whose consumer holds it.
            teams.bot_url = b.endpoint_url
            held = {
                "type": "message",
                "id": "1700000000999",
                "channelId": "msteams",
                "serviceUrl": teams.service_url,
                "recipient": dict(teams.bot),
                "timestamp": "2026-12-01T12:00:01.000Z",
                "from": first["from"],
                "conversation": first["conversation"],
                "text": "hold",
            }
            answer = asyncio.create_task(teams.deliver_raw(held, teams.keys.token()))
            await until(lambda: texts(apps[0]) == ["one", "hold"])
            await asyncio.sleep(0.3)
            assert not answer.done()  # B has not answered: A has not handled it
            release.set()
            assert (await asyncio.wait_for(answer, 10)).status in (200, 201, 202)
            await teams.wait_for_sent(count=2)
            assert [s.text for s in teams.sent] == ["echo one", "echo hold"]
        assert apps[1].logs == []
