"""Options of the IRC gateway (its YAML keys).

Names and limits follow RFC 2812 (nicknames section 2.3.1, channels section 1.3, JOIN with
keys section 3.2.1) and the IRCv3 SASL 3.1 specification (``AUTHENTICATE PLAIN``).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateways.chat import ChatGatewayOptions
from gateways.options import Reconnect, TlsFiles

__all__ = [
    "IrcChannel",
    "IrcFlood",
    "IrcGatewayOptions",
    "IrcSasl",
    "IrcTls",
    "validate_nick",
]

# RFC 2812 section 2.3.1: letter or special, then letters, digits, specials or "-". Servers
# allow longer nicknames than the RFC's 9 (NICKLEN in RPL_ISUPPORT), so no length rule here.
_NICK = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]*")
# RFC 2812 section 1.3: a prefix (#, &, + or !), then anything but NUL, BELL, CR, LF,
# space, comma and colon.
_CHANNEL = re.compile(r"[#&+!][^\x00\x07\r\n ,:]+")


def validate_nick(value: str) -> str:
    """Check a nickname (RFC 2812 section 2.3.1).

    Args:
        value: The nickname, e.g. ``"thermo"``.

    Returns:
        ``value`` unchanged.

    Raises:
        ValueError: Not a valid nickname; the message quotes it.
    """
    if not _NICK.fullmatch(value):
        raise ValueError(
            f"nick {value!r} is not a valid IRC nickname: a letter or one of []\\`_^{{|}}, "
            "then letters, digits, those or '-' (RFC 2812 section 2.3.1)"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class IrcChannel(_Model):
    """A channel to join, with its key (``JOIN #name key``, RFC 2812 section 3.2.1).

    In YAML a channel is either a name (``"#general"``) or a mapping
    (``{name: "#ops", key: "${OPS_KEY}"}``).

    Attributes:
        name: The channel, with its prefix (``#``, ``&``, ``+`` or ``!``).
        key: The channel key (``+k``), if it has one. Never logged.
    """

    name: str
    key: SecretStr | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _CHANNEL.fullmatch(value):
            raise ValueError(
                f"channel {value!r} is not a valid IRC channel name: it starts with #, &, + "
                "or ! and has no space, comma, colon or control character (RFC 2812 section 1.3)"
            )
        return value


class IrcSasl(_Model):
    """SASL PLAIN credentials (IRCv3 SASL 3.1), sent before registration completes.

    Attributes:
        username: The account name.
        password: The account's password. Never logged.
    """

    username: str = Field(min_length=1)
    password: SecretStr


class IrcTls(TlsFiles):
    """TLS to the server: ``ca_file`` (instead of the system's certificate authorities),
    ``cert_file`` (for servers that identify clients by its fingerprint, CertFP: SASL
    EXTERNAL or NickServ ``CERT ADD``) and ``key_file`` as in ``TlsFiles``, and:

    Attributes:
        verify: Check the server's certificate and host name (``server``). Turn off for a
            self-signed test server only.
    """

    verify: bool = True


class IrcFlood(_Model):
    """Flood control of the bot's own lines (a token bucket): up to ``burst`` lines at once,
    then ``rate`` lines per second. Servers disconnect clients that send faster than they
    allow ("Excess Flood"); the defaults suit the large networks.

    Attributes:
        burst: Lines that may go out back to back after a quiet spell.
        rate: Lines per second after the burst; ``null`` turns flood control off.
    """

    burst: int = Field(default=5, ge=1)
    rate: float | None = Field(default=1.0, gt=0)


class IrcGatewayOptions(ChatGatewayOptions):
    """YAML options of an IRC gateway (besides those of ``ChatGatewayOptions``).

    Attributes:
        server: Host name or address of the IRC server.
        port: TCP port; default 6697 with ``tls``, else 6667.
        tls: TLS settings; ``null`` (the default) connects in clear text.
        nick: The bot's nickname; ``scope["bot"]`` ``id`` and ``name``.
        alternative_nicks: Nicknames tried in order when ``nick`` is taken
            (ERR_NICKNAMEINUSE, 433); after them, ``nick`` with ``_`` appended.
        regain_nick_interval: Seconds between attempts to take ``nick`` back while the bot
            has an alternative; ``null`` never tries. It also tries as soon as the holder of
            ``nick`` quits or changes nick.
        username: The user name of ``USER`` (the ``user`` of ``nick!user@host``); default
            ``nick``.
        realname: The real name of ``USER``; default ``nick``.
        password: The server password (``PASS``, RFC 2812 section 3.1.1). Never logged.
        sasl: SASL PLAIN credentials; the server must offer the IRCv3 ``sasl`` capability.
        channels: Channels to join on every (re)connection: names, or ``{name, key}``.
        encoding: Character encoding of the server's lines; UTF-8 almost everywhere.
        flood: Flood control of outgoing lines.
        reconnect: Backoff between connection attempts, in seconds.
        connect_timeout: Seconds to connect and complete registration (up to the end of the
            MOTD) before the attempt counts as failed.
        send_timeout: Seconds a ``chat.send`` waits for a registered connection before it
            fails.
        max_line_bytes: The IRC line limit in bytes, prefix and CRLF included (512, RFC 2812
            section 2.3).
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    server: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65_535)
    tls: IrcTls | None = None
    nick: str
    alternative_nicks: list[str] = Field(default_factory=list)
    regain_nick_interval: float | None = Field(default=30.0, gt=0)
    username: str | None = Field(default=None, min_length=1, pattern=r"^[^\x00\r\n @]+$")
    realname: str | None = Field(default=None, min_length=1, pattern=r"^[^\x00\r\n]+$")
    password: SecretStr | None = None
    sasl: IrcSasl | None = None
    channels: list[IrcChannel] = Field(default_factory=list)
    encoding: str = "utf-8"
    flood: IrcFlood = Field(default_factory=IrcFlood)
    reconnect: Reconnect = Field(default_factory=Reconnect)
    connect_timeout: float = Field(default=30.0, gt=0)
    send_timeout: float = Field(default=30.0, gt=0)
    max_line_bytes: int = Field(default=512, ge=128)

    @field_validator("nick")
    @classmethod
    def _nick(cls, value: str) -> str:
        return validate_nick(value)

    @field_validator("alternative_nicks")
    @classmethod
    def _alternatives(cls, value: list[str]) -> list[str]:
        for nick in value:
            validate_nick(nick)
        return value

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_names(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        try:
            "".encode(value)
        except LookupError:
            raise ValueError(f"encoding {value!r} is not known to Python") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IrcGatewayOptions:
        seen: set[str] = set()
        for channel in self.channels:
            folded = channel.name.lower()
            if folded in seen:
                raise ValueError(f"channel {channel.name!r} is listed twice")
            seen.add(folded)
        if self.nick in self.alternative_nicks:
            raise ValueError(f"nick {self.nick!r} is also in alternative_nicks")
        return self

    @property
    def effective_port(self) -> int:
        """``port``, or the default: 6697 with TLS, 6667 without."""
        if self.port is not None:
            return self.port
        return 6697 if self.tls is not None else 6667
