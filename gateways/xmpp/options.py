"""Options of the XMPP gateway (its YAML keys).

Addresses are JIDs (RFC 7622): ``local@domain/resource``; a MUC room is a bare JID on a
multi-user chat service (XEP-0045), ``room@conference.example.org``, and the bot's place in
it is ``room@conference.example.org/<nick>``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator
from slixmpp import JID
from slixmpp.jid import InvalidJID

from config import OptionsModel
from gateways.chat import ChatGatewayOptions
from gateways.options import Reconnect, TlsFiles

__all__ = ["XmppGatewayOptions", "XmppRoom", "XmppTls", "bare_jid"]


def bare_jid(value: str, what: str) -> str:
    """Check a bare JID (RFC 7622: ``local@domain`` or ``domain``, no resource).

    Args:
        value: The JID, e.g. ``"bot@example.org"``.
        what: What it is, for the message (``"jid"``, ``"room"``).

    Returns:
        The JID as RFC 7622 normalises it (``Bot@Example.org`` gives ``bot@example.org``).

    Raises:
        ValueError: Not a valid JID, or it has a resource; the message quotes it.
    """
    try:
        jid = JID(value)
    except InvalidJID as exc:
        raise ValueError(f"{what} {value!r} is not a valid JID (RFC 7622): {exc}") from None
    if jid.resource:
        raise ValueError(
            f"{what} {value!r} has a resource ({jid.resource!r}); give the bare JID"
            + (" and set 'resource'" if what == "jid" else "")
        )
    return str(jid.bare)


def _resource(value: str, what: str) -> str:
    try:
        JID(f"x@example.org/{value}")
    except InvalidJID as exc:
        raise ValueError(f"{what} {value!r} is not a valid JID resource: {exc}") from None
    return value


class _Model(OptionsModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class XmppRoom(_Model):
    """A multi-user chat room to join (XEP-0045 section 7.2), on every session.

    In YAML a room is either its JID (``"ops@conference.example.org"``) or a mapping
    (``{jid: ops@conference.example.org, nick: thermo, password: "${OPS_PASSWORD}"}``).

    Attributes:
        jid: The room's bare JID.
        nick: The bot's nickname in the room; default the gateway's ``nick``.
        password: The room's password, if it has one. Never logged.
    """

    jid: str
    nick: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None

    @field_validator("jid")
    @classmethod
    def _jid(cls, value: str) -> str:
        jid = bare_jid(value, "room")
        if "@" not in jid:
            raise ValueError(
                f"room {value!r} has no local part: a room is room@service "
                "(ops@conference.example.org)"
            )
        return jid

    @field_validator("nick")
    @classmethod
    def _nick(cls, value: str | None) -> str | None:
        return None if value is None else _resource(value, "nick")


class XmppTls(TlsFiles):
    """TLS to the server, always on: ``ca_file`` (instead of the system's certificate
    authorities), ``cert_file`` and ``key_file`` as in ``TlsFiles`` (an empty value, as an
    unset ``${VAR:-}`` gives, is none), and:

    Attributes:
        mode: ``"starttls"`` (the default): connect in clear text and upgrade with STARTTLS
            before anything else (RFC 6120 section 5), refusing a server that does not offer
            it; ``"direct"``: TLS from the first byte (XEP-0368, port 5223 by default).
        verify: Check the server's certificate and that it is for the JID's domain. Turn
            off for a self-signed test server only.
    """

    mode: Literal["starttls", "direct"] = "starttls"
    verify: bool = True

    @field_validator("ca_file", "cert_file", "key_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # ``ca_file: ${XMPP_CA_FILE:-}`` with the variable unset: no file, not the file "".
        return None if value == "" else value


class XmppGatewayOptions(ChatGatewayOptions):
    """YAML options of an XMPP gateway (besides those of ``ChatGatewayOptions``).

    Attributes:
        jid: The bot's bare JID (``bot@example.org``); ``scope["bot"]["id"]``.
        password: The account's password. Never logged.
        resource: The resource bound to the session (``bot@example.org/<resource>``).
        host: Where to connect; ``null``: the DNS SRV records of the JID's domain
            (RFC 6120 section 3.2.1), then the domain itself.
        port: Its port; default 5222 with STARTTLS, 5223 with direct TLS. Needs ``host``.
        tls: TLS settings (always on).
        nick: The bot's nickname in rooms (and ``scope["bot"]["name"]``); default the
            JID's local part.
        rooms: Rooms to join on every session: JIDs, or ``{jid, nick, password}``.
        reconnect: Backoff between connection attempts, in seconds.
        connect_timeout: Seconds to connect, negotiate TLS, log in and bind (or resume),
            and again to join the rooms, before the attempt counts as failed.
        send_timeout: Seconds a ``chat.send`` waits for a session before it fails.
        ping_interval: Seconds between XEP-0199 pings to the server, which find a
            connection that went silent; ``null``: none.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    jid: str
    password: SecretStr
    resource: str = "asgi-gateway"
    host: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65_535)
    tls: XmppTls = Field(default_factory=XmppTls)
    nick: str | None = Field(default=None, min_length=1)
    rooms: list[XmppRoom] = Field(default_factory=list)
    reconnect: Reconnect = Field(default_factory=Reconnect)
    connect_timeout: float = Field(default=30.0, gt=0)
    send_timeout: float = Field(default=30.0, gt=0)
    ping_interval: float | None = Field(default=60.0, gt=0)

    @field_validator("jid")
    @classmethod
    def _jid(cls, value: str) -> str:
        jid = bare_jid(value, "jid")
        if "@" not in jid:
            raise ValueError(f"jid {value!r} has no local part: the bot's JID is user@domain")
        return jid

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: str) -> str:
        return _resource(value, "resource")

    @field_validator("nick")
    @classmethod
    def _nick(cls, value: str | None) -> str | None:
        return None if value is None else _resource(value, "nick")

    @field_validator("rooms", mode="before")
    @classmethod
    def _room_jids(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"jid": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> XmppGatewayOptions:
        if self.port is not None and self.host is None:
            raise ValueError(
                f"port {self.port} is set without host; set host too, or neither (DNS SRV)"
            )
        seen: set[str] = set()
        for room in self.rooms:
            if room.jid in seen:
                raise ValueError(f"room {room.jid!r} is listed twice")
            seen.add(room.jid)
        return self

    @property
    def bot_nick(self) -> str:
        """``nick``, or the JID's local part."""
        return self.nick or self.jid.partition("@")[0]

    @property
    def effective_port(self) -> int | None:
        """``port``, or with ``host`` the default: 5222 for STARTTLS, 5223 for direct TLS."""
        if self.host is None:
            return None
        if self.port is not None:
            return self.port
        return 5223 if self.tls.mode == "direct" else 5222

    def nick_in(self, room: XmppRoom) -> str:
        """The bot's nickname in ``room``."""
        return room.nick or self.bot_nick
