"""The IRC gateway's connection: reconnects, nick fallback, server password, SASL refusal."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gateways.base import GatewayError
from gateways.irc import IrcAuthError

pytestmark = pytest.mark.timeout(60)


async def test_after_a_server_restart_the_gateway_rejoins_and_old_scopes_get_events(
    ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    async def echo(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await log.send({"type": "chat.send", "text": f"echo {event['text']}"})

    app = recording_app(echo)
    gateway = await run_gateway(make_irc_gateway(ngircd, app, channels=["#t", "#u"]))
    async with irc_human(ngircd, "alice") as alice:
        await alice.join("#t")
        await alice.wait_member("#t", "gwbot")
        await alice.privmsg("#t", "before")
        await alice.expect(r"^:gwbot!\S+ PRIVMSG #t :echo before$")
    (before,) = app.by_key("#t")

    ngircd.kill()  # no QUIT, no ERROR: the socket just dies
    await asyncio.to_thread(ngircd.start)

    async with irc_human(ngircd, "alice") as alice:
        await alice.join("#t")
        await alice.wait_member("#t", "gwbot", within=15)  # reconnected and rejoined
        await alice.join("#u")
        await alice.wait_member("#u", "gwbot")
        # The server shows gwbot in #u as soon as it takes the JOIN; the gateway counts
        # itself connected once it has read the server's answers to all its JOINs.
        async with asyncio.timeout(5):
            while not gateway.connected:
                await asyncio.sleep(0.01)
        await alice.privmsg("#t", "after")
        await alice.expect(r"^:gwbot!\S+ PRIVMSG #t :echo after$", within=15)
    assert app.by_key("#t") == [before]  # the same instance, never disconnected
    assert before.types == ["chat.connect", "chat.message", "chat.message"]
    assert [e["text"] for e in before.events[1:]] == ["before", "after"]
    assert not before.errors


async def test_a_taken_nick_gets_an_alternative_and_the_nick_is_regained_when_free(
    ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    app = recording_app()
    async with irc_human(ngircd, "gwbot") as squatter:
        await squatter.join("#t")
        gateway = await run_gateway(
            make_irc_gateway(
                ngircd, app, alternative_nicks=["gwbot_alt"], regain_nick_interval=None
            )
        )
        assert gateway.nick == "gwbot_alt"
        assert gateway.bot == {"id": "gwbot_alt", "name": "gwbot_alt"}
        await squatter.wait_member("#t", "gwbot_alt")
        await squatter.privmsg("#t", "gwbot_alt: are you there")
        await app.wait_for(lambda: bool(app.logs) and len(app.logs[0].events) == 2)
        message = app.logs[0].events[1]
        assert message["mentions_bot"] is True
        assert app.logs[0].scope["bot"]["name"] == "gwbot_alt"

        await squatter.send("NICK alice")  # frees the nick: the bot takes it back
        await squatter.expect(r"^:gwbot_alt!\S+ NICK :?gwbot$")
    async with asyncio.timeout(5):
        while gateway.nick != "gwbot":
            await asyncio.sleep(0.02)
    assert app.logs[0].scope["bot"] == {"id": "gwbot", "name": "gwbot"}


async def test_a_nick_taken_with_no_alternative_left_gets_an_underscore(
    ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    async with irc_human(ngircd, "gwbot"):
        gateway = await run_gateway(make_irc_gateway(ngircd, recording_app()))
        assert gateway.nick == "gwbot_"


async def test_a_server_password_is_given_and_accepted(
    make_ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    server = make_ngircd(password="pass-w0rd")
    app = recording_app()
    gateway = await run_gateway(make_irc_gateway(server, app, password="pass-w0rd"))
    assert gateway.connected
    async with irc_human(server, "alice", password="pass-w0rd") as alice:
        await alice.privmsg("gwbot", "hello")
        await app.wait_for(lambda: bool(app.logs) and len(app.logs[0].events) == 2)


@pytest.mark.parametrize("given", [None, "not-the-password"])
async def test_a_missing_or_bad_password_fails_start_with_a_clear_error_without_the_secret(
    given, make_ngircd, recording_app, make_irc_gateway, run_gateway, caplog
):
    server = make_ngircd(password="pass-w0rd")
    gateway = make_irc_gateway(server, recording_app(), password=given)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(IrcAuthError) as raised:
        await run_gateway(gateway)
    message = str(raised.value)
    assert isinstance(raised.value, GatewayError)
    assert "refused the password" in message
    assert f"{server.host}:{server.port}" in message
    assert "Bad password" in message  # ngircd's own reason
    if given is not None:
        assert given not in message
        assert given not in caplog.text  # not even at DEBUG
        assert "PASS ***" in caplog.text


async def test_sasl_on_a_server_without_sasl_fails_with_a_clear_error(
    ngircd, recording_app, make_irc_gateway, run_gateway, caplog
):
    caplog.set_level(logging.DEBUG)
    gateway = make_irc_gateway(
        ngircd, recording_app(), sasl={"username": "gwbot", "password": "sasl-s3cret"}
    )
    with pytest.raises(IrcAuthError, match=r"does not offer the IRCv3 'sasl' capability"):
        await run_gateway(gateway)
    assert "sasl-s3cret" not in caplog.text


async def test_a_server_that_is_down_at_start_is_retried_until_it_comes_up(
    ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    ngircd.stop()
    app = recording_app()
    gateway = await run_gateway(make_irc_gateway(ngircd, app, connect_timeout=0.5))
    assert not gateway.connected  # start() returned: the daemon serves meanwhile
    await asyncio.to_thread(ngircd.start)
    async with asyncio.timeout(15):
        while not gateway.connected:
            await asyncio.sleep(0.05)
    async with irc_human(ngircd, "alice") as alice:
        await alice.privmsg("gwbot", "hi")
        await app.wait_for(lambda: bool(app.logs) and len(app.logs[0].events) == 2)


async def test_send_fails_clearly_when_no_connection_comes_back_in_time(
    ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    release = asyncio.Event()

    async def reply_later(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await release.wait()
            await log.send({"type": "chat.send", "text": "too late"})

    app = recording_app(reply_later)
    gateway = await run_gateway(make_irc_gateway(ngircd, app, send_timeout=0.5))
    async with irc_human(ngircd, "alice") as alice:
        await alice.privmsg("gwbot", "hi")
        await app.wait_for(lambda: bool(app.logs) and len(app.logs[0].events) == 2)
    ngircd.kill()
    async with asyncio.timeout(5):
        while gateway.connected:
            await asyncio.sleep(0.02)
    release.set()
    await app.wait_for(lambda: bool(app.logs[0].errors))
    error = app.logs[0].errors[0]
    assert isinstance(error, GatewayError)
    assert "not connected" in str(error)
    assert "'alice'" in str(error)
