"""A token revoked while the Slack gateway runs: the gateway fails for good (the daemon exits
1) with Slack's error and without the token, instead of retrying forever; a dropped socket
or a transient failure still reconnects."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import Daemon

from gateways.base import GatewayError
from gateways.slack import SlackGateway
from gateways.testing.slack_server import SlackTestServer, message

CHANNEL = "C0CHAN0001"


async def start(run_gateway: Any, slack_options: Any, app: Any, **options: Any) -> SlackGateway:
    gateway = SlackGateway("slack", app, slack_options(**options))
    await run_gateway(gateway)
    return gateway


async def failure(gateway: SlackGateway, within: float = 10.0) -> GatewayError:
    """What ``wait_failed()`` raises, within ``within`` seconds."""
    with pytest.raises(GatewayError) as caught:
        async with asyncio.timeout(within):
            await gateway.wait_failed()
    return caught.value


def messages(app: Any) -> list[dict[str, Any]]:
    return [e for log in app.logs for e in log.events if e["type"] == "chat.message"]


async def answer(log: Any, event: dict[str, Any]) -> None:
    if event["type"] == "chat.message":
        await log.send({"type": "chat.send", "text": "got " + event["text"]})


@pytest.mark.parametrize(
    "error", ["token_revoked", "invalid_auth", "account_inactive", "not_authed"]
)
async def test_a_revoked_app_token_fails_the_gateway_and_stops_socket_mode(
    error: str,
    slack_server: SlackTestServer,
    slack_options: Any,
    recording_app: Any,
    run_gateway: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = await start(run_gateway, slack_options, recording_app())
    await slack_server.wait_connected()

    await slack_server.revoke(slack_server.app_token, error)

    exc = await failure(gateway)
    text = str(exc)
    assert "'slack'" in text
    assert repr(error) in text
    assert "apps.connections.open" in text
    assert "app_token" in text
    refused = slack_server.calls_to("apps.connections.open")[-1]
    assert refused.response == {"ok": False, "error": error}
    # Socket Mode gave up: no connection, and no more apps.connections.open, over several
    # ping intervals (0.3 s) in which slack_sdk's client would have tried again.
    async with asyncio.timeout(5):
        while slack_server.live_connections:
            await asyncio.sleep(0.05)
    tries = len(slack_server.calls_to("apps.connections.open"))
    await asyncio.sleep(1.0)
    assert len(slack_server.calls_to("apps.connections.open")) == tries
    assert slack_server.live_connections == 0
    assert any(
        r.levelno == logging.ERROR
        and r.name == "gateways.slack.gateway"
        and error in r.getMessage()
        for r in caplog.records
    )
    assert slack_server.app_token not in caplog.text
    assert slack_server.bot_token not in caplog.text


async def test_a_revoked_bot_token_fails_the_next_send_and_the_gateway(
    slack_server: SlackTestServer,
    slack_options: Any,
    recording_app: Any,
    run_gateway: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    app = recording_app(answer)
    # resolve_names off: chat.postMessage is the first call made with the bot token.
    gateway = await start(run_gateway, slack_options, app, resolve_names=False)
    await slack_server.send_event(message(CHANNEL, "before"))
    await slack_server.wait_for_call("chat.postMessage", ok=True)

    await slack_server.revoke(slack_server.bot_token)
    await slack_server.send_event(message(CHANNEL, "after"))

    exc = await failure(gateway)
    assert "'slack'" in str(exc)
    assert "chat.postMessage answered 'token_revoked'" in str(exc)
    assert "bot_token" in str(exc)
    await app.wait_for(lambda: any(log.errors for log in app.logs))
    [log] = app.logs
    [refused] = log.errors  # the application's own send raised
    assert isinstance(refused, GatewayError)
    assert "token_revoked" in str(refused)
    assert CHANNEL in str(refused)
    # The gateway failed for good: Socket Mode is closed too.
    async with asyncio.timeout(5):
        while slack_server.live_connections:
            await asyncio.sleep(0.05)
    assert slack_server.bot_token not in caplog.text
    assert slack_server.app_token not in caplog.text


@pytest.mark.parametrize("abrupt", [False, True])
async def test_a_dropped_socket_reconnects_and_does_not_fail_the_gateway(
    abrupt: bool,
    slack_server: SlackTestServer,
    slack_options: Any,
    recording_app: Any,
    run_gateway: Any,
) -> None:
    app = recording_app()
    gateway = await start(run_gateway, slack_options, app)
    failed = asyncio.ensure_future(gateway.wait_failed())
    try:
        await slack_server.drop_connections(abrupt=abrupt)
        await slack_server.wait_connected(total=2, within=10)
        await slack_server.send_event(message(CHANNEL, "after"))
        await app.wait_for(lambda: len(messages(app)) == 1)
        assert not failed.done()
        assert gateway.refusal is None
    finally:
        failed.cancel()


@pytest.mark.parametrize("how", ["server_error", "rate_limited"])
async def test_a_transient_refusal_of_the_reconnect_is_retried(
    how: str,
    slack_server: SlackTestServer,
    slack_options: Any,
    recording_app: Any,
    run_gateway: Any,
) -> None:
    app = recording_app()
    gateway = await start(run_gateway, slack_options, app)
    failed = asyncio.ensure_future(gateway.wait_failed())
    try:
        if how == "server_error":
            slack_server.fail("apps.connections.open", "internal_error")
        else:
            slack_server.rate_limit("apps.connections.open", retry_after=1)
        await slack_server.drop_connections()
        await slack_server.wait_connected(total=2, within=15)
        refused = [c for c in slack_server.calls_to("apps.connections.open") if not c.ok]
        assert [c.response["error"] for c in refused] == [
            "internal_error" if how == "server_error" else "ratelimited"
        ]
        await slack_server.send_event(message(CHANNEL, "after"))
        await app.wait_for(lambda: len(messages(app)) == 1)
        assert not failed.done()
    finally:
        failed.cancel()


async def test_the_daemon_exits_1_when_the_app_token_is_revoked(
    tmp_path: Path, slack_server: SlackTestServer
) -> None:
    config = tmp_path / "slack.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            application: console_bot:application
            layer:
              type: memory
            gateways:
              slack:
                type: slack
                bot_token: ${SLACK_BOT_TOKEN}
                app_token: ${SLACK_APP_TOKEN}
                base_url: ${SLACK_API_URL}
                ping_interval: 0.5
            logging:
              level: DEBUG
            shutdown_timeout: 5
            """
        )
    )
    daemon = Daemon(
        config,
        {
            "SLACK_BOT_TOKEN": slack_server.bot_token,
            "SLACK_APP_TOKEN": slack_server.app_token,
            "SLACK_API_URL": slack_server.api_url,
        },
    )
    try:
        await slack_server.wait_connected(within=20)
        await slack_server.revoke(slack_server.app_token)
        # The daemon exits on its own; the server keeps answering meanwhile.
        code = await asyncio.to_thread(daemon.stop, None, 20)
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.communicate()
    assert code == 1, daemon.output
    assert "token_revoked" in daemon.output
    assert "apps.connections.open" in daemon.output
    assert slack_server.app_token not in daemon.output
    assert slack_server.bot_token not in daemon.output
