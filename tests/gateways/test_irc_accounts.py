"""IRC identities: the IRCv3 ``account-tag`` of a services network is the sender's identity.

ngircd has no services and offers no ``account-tag``, so its users are unauthenticated
(``identity`` ``None``, tested in test_irc.py). Here a small server speaks the wire
protocol of a network that has them (CAP LS/REQ/ACK, then tagged PRIVMSGs:
https://ircv3.net/specs/extensions/account-tag and
https://ircv3.net/specs/extensions/capability-negotiation), and pydle runs unchanged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(30)


@dataclass
class ServicesNetwork:
    """One client at a time; offers ``caps``; then sends ``lines`` once registered."""

    caps: str
    host: str = "127.0.0.1"
    port: int = 0
    lines: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    requested: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        nick, negotiating, user_sent = "gwbot", False, False
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                words = raw.decode().strip().split(" ")
                if words[:2] == ["CAP", "LS"]:
                    negotiating = True  # registration waits for CAP END
                    send(f":irc.test CAP * LS :{self.caps}")
                elif words[:2] == ["CAP", "REQ"]:
                    wanted = " ".join(words[2:]).lstrip(":")
                    self.requested.append(wanted)
                    send(f":irc.test CAP * ACK :{wanted}")
                elif words[:2] == ["CAP", "END"]:
                    negotiating = False
                elif words[0] == "NICK":
                    nick = words[1]
                elif words[0] == "USER":
                    user_sent = True
                elif words[0] == "PING":
                    send(f":irc.test PONG irc.test :{words[-1]}")
                await writer.drain()
                if user_sent and not negotiating:
                    break
            send(f":irc.test 001 {nick} :Welcome")
            send(f":irc.test 375 {nick} :- irc.test Message of the day -")
            send(f":irc.test 376 {nick} :End of MOTD")
            while True:
                send(await self.lines.get())
                await writer.drain()
        finally:
            writer.close()


async def messages_from(
    network: ServicesNetwork,
    lines: list[str],
    make_gateway: Any,
    run_gateway: Any,
    recording_app: Any,
) -> list[dict[str, Any]]:
    server = await asyncio.start_server(network.serve, network.host, 0)
    network.port = server.sockets[0].getsockname()[1]
    try:
        app = recording_app()
        await run_gateway(make_gateway(network, app, channels=[]))
        for line in lines:
            network.lines.put_nowait(line)

        def arrived() -> bool:
            return sum(log.types.count("chat.message") for log in app.logs) == len(lines)

        await app.wait_for(arrived, within=10)
        return [e for log in app.logs for e in log.events if e["type"] == "chat.message"]
    finally:
        server.close()


async def test_the_account_tag_is_the_identity_and_a_nick_alone_is_none(
    make_irc_gateway: Any, run_gateway: Any, recording_app: Any
) -> None:
    network = ServicesNetwork(caps="account-tag multi-prefix")
    events = await messages_from(
        network,
        [
            "@account=alice :alice!a@host PRIVMSG gwbot :hello",
            # Not logged in to services: no account, whatever the nick.
            ":root!r@host PRIVMSG gwbot :i am root",
            "@account=* :carol!c@host PRIVMSG gwbot :logged out",
            # A client-only tag (+) is anyone's to send: it is not the server's account tag.
            "@+account=alice :mallory!m@host PRIVMSG gwbot :trust me",
        ],
        make_irc_gateway,
        run_gateway,
        recording_app,
    )
    assert "account-tag" in " ".join(network.requested)
    identities = {e["user"]["name"]: e["user"]["identity"] for e in events}
    assert identities == {"alice": "irc:alice", "root": None, "carol": None, "mallory": None}


async def test_a_tag_on_a_network_that_did_not_grant_the_capability_is_not_trusted(
    make_irc_gateway: Any, run_gateway: Any, recording_app: Any
) -> None:
    network = ServicesNetwork(caps="multi-prefix")
    (event,) = await messages_from(
        network,
        ["@account=alice :alice!a@host PRIVMSG gwbot :hello"],
        make_irc_gateway,
        run_gateway,
        recording_app,
    )
    assert "account-tag" not in " ".join(network.requested)
    assert event["user"]["identity"] is None
