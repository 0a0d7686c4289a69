"""The XMPP gateway's connection to a real Prosody: TLS (STARTTLS and direct), refused
logins and certificates, a server that is not there yet, and reconnections that keep the
scopes: resumed with XEP-0198 after a cut, a new session after a server restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from test_xmpp_helpers import *  # noqa: F403 (its fixtures)
from test_xmpp_helpers import BOT, ROOM, USERS, gateway_options, new_prosody

from gateways.xmpp import XmppAuthError, XmppGateway, XmppTlsError

pytestmark = pytest.mark.timeout(60)


async def until(predicate: Callable[[], bool], what: str, within: float = 15.0) -> None:
    try:
        async with asyncio.timeout(within):
            while not predicate():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"{what} did not happen within {within} s")


def echo() -> Any:
    async def on_event(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            if event["text"].startswith("slow"):
                await asyncio.sleep(1.0)
            await log.send({"type": "chat.send", "text": "echo " + event["text"]})

    return on_event


async def test_a_wrong_password_is_one_clear_error_at_start(prosody, make_xmpp_gateway, caplog):
    gateway = make_xmpp_gateway(prosody, None, password="not-the-password")
    with pytest.raises(XmppAuthError) as raised:
        async with asyncio.timeout(15):
            await gateway.start()
    message = str(raised.value)
    assert "refused the login" in message
    assert "not-authorized" in message
    assert "not-the-password" not in message
    assert "not-the-password" not in caplog.text
    assert "Traceback" not in caplog.text
    assert not gateway.connected


async def test_a_certificate_from_an_unknown_authority_is_refused(prosody):
    options = gateway_options(prosody, tls={})  # the system's authorities: not the test CA
    gateway = XmppGateway("xmpp", None, options)  # type: ignore[arg-type]
    with pytest.raises(XmppTlsError) as raised:
        async with asyncio.timeout(15):
            await gateway.start()
    assert "certificate failed the check" in str(raised.value)
    assert "tls.ca_file" in str(raised.value)


async def test_verify_false_connects_to_a_test_server(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    gateway = await run_gateway(
        make_xmpp_gateway(prosody, recording_app(echo()), tls={"verify": False})
    )
    assert gateway.connected


async def test_direct_tls_connects_to_the_xep_0368_port(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    app = recording_app(echo())
    gateway = make_xmpp_gateway(
        prosody,
        app,
        port=prosody.tls_port,
        tls={"mode": "direct", "ca_file": str(prosody.ca_file)},
    )
    await run_gateway(gateway)
    alice = await human(prosody, "alice")
    alice.say(BOT, "over direct TLS")
    await alice.expect(r"^echo over direct TLS$")


async def test_a_server_without_starttls_is_refused_before_the_password_is_sent(
    make_prosody, make_xmpp_gateway
):
    plain = make_prosody(starttls=False)
    gateway = make_xmpp_gateway(plain, None)
    with pytest.raises(XmppTlsError) as raised:
        async with asyncio.timeout(15):
            await gateway.start()
    assert "did not offer STARTTLS" in str(raised.value)
    assert "Authenticated as bot@localhost" not in plain.stderr()


async def test_a_server_that_is_not_there_yet_is_retried_and_then_served(
    tmp_path, make_xmpp_gateway, run_gateway, recording_app, human, caplog
):
    server = new_prosody(tmp_path / "later")  # not started: nothing listens on its port
    app = recording_app(echo())
    caplog.set_level(logging.WARNING, logger="gateways.xmpp")
    gateway = await run_gateway(make_xmpp_gateway(server, app))
    assert not gateway.connected
    assert "cannot connect" in caplog.text
    assert "Traceback" not in caplog.text
    server.start()
    try:
        await until(lambda: gateway.connected, "the connection once the server is up")
        alice = await human(server, "alice")
        alice.say(BOT, "you made it")
        await alice.expect(r"^echo you made it$")
    finally:
        server.kill()


async def test_a_cut_connection_is_resumed_and_loses_nothing_either_way(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human, proxy, caplog
):
    caplog.set_level(logging.INFO, logger="gateways.xmpp")
    forwarder = await proxy(prosody.port)
    app = recording_app(echo())
    gateway = await run_gateway(make_xmpp_gateway(prosody, app, port=forwarder.port))
    alice = await human(prosody, "alice")
    alice.say(BOT, "before")
    await alice.expect(r"^echo before$")
    alice.say(BOT, "slow reply")  # answered 1 s later, while the connection is down
    await until(lambda: len(app.logs[0].events) == 3, "the slow message's delivery")
    forwarder.cut()
    alice.say(BOT, "during")  # the server keeps it for the hibernating session
    await until(lambda: gateway.sessions == 2, "the resumption")
    assert gateway.last_session == "resumed"
    await alice.expect(r"^echo slow reply$")
    await alice.expect(r"^echo during$")
    alice.say(BOT, "after")
    await alice.expect(r"^echo after$")
    [log] = app.logs  # one scope all along
    assert [e["text"] for e in log.events if e["type"] == "chat.message"] == [
        "before",
        "slow reply",
        "during",
        "after",
    ]
    assert log.types.count("chat.connect") == 1
    assert "resumed its session" in caplog.text


async def test_a_server_restart_starts_a_new_session_rejoins_and_keeps_the_scopes(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    app = recording_app(echo())
    gateway = await run_gateway(make_xmpp_gateway(prosody, app, rooms=[ROOM]))
    alice = await human(prosody, "alice")
    await alice.join(ROOM, "alice")
    alice.say(ROOM, "before", groupchat=True)
    await alice.expect(r"^echo before$")
    await alice.close()
    await asyncio.to_thread(prosody.restart)
    await until(lambda: gateway.sessions == 2, "the new session")
    assert gateway.last_session == "started"
    alice = await human(prosody, "alice", "again")
    await alice.join(ROOM, "alice")
    await until(lambda: "bot" in alice.occupants(ROOM), "the bot back in the room")
    alice.say(ROOM, "after", groupchat=True)
    await alice.expect(r"^echo after$", sender=f"{ROOM}/bot")
    [log] = app.logs
    assert [e["text"] for e in log.events if e["type"] == "chat.message"] == ["before", "after"]
    assert log.types.count("chat.connect") == 1


async def test_stop_leaves_the_rooms_and_goes_offline(
    prosody, make_xmpp_gateway, recording_app, human
):
    gateway = make_xmpp_gateway(prosody, recording_app(), rooms=[ROOM])
    async with asyncio.timeout(10):
        await gateway.start()
    alice = await human(prosody, "alice")
    await alice.join(ROOM, "alice")
    await until(lambda: "bot" in alice.occupants(ROOM), "the bot in the room")
    async with asyncio.timeout(10):
        await gateway.stop()
    await until(lambda: "bot" not in alice.occupants(ROOM), "the bot leaving the room")
    assert USERS  # the accounts stay: a later start logs in again


async def test_a_reply_the_server_never_acknowledged_is_sent_again_after_it_restarts(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    app = recording_app(echo())
    gateway = await run_gateway(make_xmpp_gateway(prosody, app))
    alice = await human(prosody, "alice")
    alice.say(BOT, "slow answer")  # answered 1 s later
    await until(lambda: bool(app.logs) and len(app.logs[0].events) == 2, "the delivery")
    await alice.close()
    prosody.pause()  # the reply goes into the socket; no acknowledgement comes back
    await until(lambda: len(app.logs[0].events) == 2 and gateway.connected, "the reply's send")
    await asyncio.sleep(1.5)
    prosody.kill()  # and whatever it read is lost with it
    await asyncio.to_thread(prosody.start)
    await until(lambda: gateway.sessions == 2, "the new session")
    alice = await human(prosody, "alice", "again")  # the server kept it offline for her
    await alice.expect(r"^echo slow answer$", sender=BOT)


async def test_a_server_gone_silent_is_found_by_the_ping_and_left(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    app = recording_app(echo())
    gateway = await run_gateway(make_xmpp_gateway(prosody, app, ping_interval=0.5))
    prosody.pause()  # SIGSTOP: the connection stays open, nothing answers
    await until(lambda: not gateway.connected, "the unanswered ping's effect")
    prosody.kill()
    await asyncio.to_thread(prosody.start)
    await until(lambda: gateway.sessions == 2, "the new session")
    alice = await human(prosody, "alice")
    alice.say(BOT, "awake")
    await alice.expect(r"^echo awake$")
