"""Options of the web chat gateway (its YAML keys).

The token secret is a ``SecretStr``: never logged, never shown by ``asgi-gateway check``, and
error messages name the option without its value.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from gateways.chat import ChatGatewayOptions

__all__ = ["WebChatGatewayOptions", "normal_origin"]


def normal_origin(value: str) -> str:
    """An origin as browsers send it in ``Origin`` (RFC 6454 section 6.1): ``scheme://host``
    or ``scheme://host:port``, lowercase, without a default port, path or trailing slash.

    Raises:
        ValueError: ``value`` is not an ``http``/``https`` origin (it has a path, a query,
            credentials, or another scheme).
    """
    parts = urlsplit(value.strip())
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(f"{value!r} is not an origin such as 'https://www.example.com'")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return (
        f"{scheme}://{host}" if parts.port in (None, default) else f"{scheme}://{host}:{parts.port}"
    )


class WebChatGatewayOptions(ChatGatewayOptions):
    """YAML options of a web chat gateway (besides those of ``ChatGatewayOptions``).

    Attributes:
        host: Address the page, the widget and the WebSocket listen on.
        port: TCP port to listen on; 0 picks a free one (see ``WebChatGateway.http_url``).
        title: The page's and the chat box's title.
        bot_name: The bot's name, ``scope["bot"]["name"]``, shown above its answers.
        allowed_origins: Origins (``https://www.example.com``) whose pages may open the
            WebSocket, besides the gateway's own page (an ``Origin`` whose host is the
            request's ``Host``). Any other ``Origin``, or none, is refused with 403.
        token_secret: The HMAC secret (HS256) of the tokens a host site issues to give a
            session its user (``webchat:<sub>``). ``None``: no token is accepted and every
            session is anonymous. Never logged.
        token_issuer: The ``iss`` a token must have; ``None``: not checked.
        token_audience: The ``aud`` a token must have; ``None``: a token with ``aud`` is
            refused (RFC 7519 section 4.1.3).
        require_token: Refuse sessions without a valid token (no anonymous visitors).
        clock_skew: Seconds of clock skew allowed on a token's ``exp``, ``nbf`` and ``iat``.
        session_idle: Seconds a session is kept after its last frame while no socket is
            connected; then it expires, with its outbox, and its id opens a new session.
        max_sessions: Most sessions kept at once; a visitor beyond them is refused (close
            code 1013, try again later).
        outbox_size: Most answers kept per session until the page acknowledges them (its
            socket is away, or slow); beyond, the oldest are dropped (and counted in the
            next ``welcome``).
        max_message_bytes: Longest frame a page may send, in bytes of UTF-8; a longer
            one is refused with an ``error`` frame ``too_large``.
        rate: Messages per second a session may send, on average.
        burst: Messages a session may send at once, above ``rate``; a message beyond is
            refused with an ``error`` frame ``rate_limited`` (with ``retry_after``).
        hello_timeout: Seconds a new socket has to send its ``hello`` frame (close 4408).
        dedupe_size: How many of its latest message ids each session remembers, so a
            message sent again after a reconnect is acknowledged and not delivered twice.
        heartbeat: Seconds between WebSocket pings to each page (a dead socket is closed
            after no pong within half of it); ``None``: no pings.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65_535)
    title: str = Field(default="Chat", min_length=1, max_length=100)
    bot_name: str = Field(default="bot", min_length=1, max_length=100)
    allowed_origins: tuple[str, ...] = ()
    token_secret: SecretStr | None = None
    token_issuer: str | None = None
    token_audience: str | None = None
    require_token: bool = False
    clock_skew: float = Field(default=30.0, ge=0, le=3600)
    session_idle: float = Field(default=1800.0, gt=0)
    max_sessions: int = Field(default=10_000, ge=1)
    outbox_size: int = Field(default=100, ge=1, le=100_000)
    max_message_bytes: int = Field(default=4096, ge=256, le=1_048_576)
    rate: float = Field(default=2.0, gt=0)
    burst: int = Field(default=10, ge=1)
    hello_timeout: float = Field(default=10.0, gt=0)
    dedupe_size: int = Field(default=256, ge=1, le=100_000)
    heartbeat: float | None = Field(default=30.0, gt=0)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normal_origin(origin) for origin in value)

    @field_validator("token_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            # RFC 7518 section 3.2: an HS256 key of at least 256 bits.
            raise ValueError("token_secret must be at least 32 bytes (RFC 7518 section 3.2)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WebChatGatewayOptions:
        if self.require_token and self.token_secret is None:
            raise ValueError("require_token needs token_secret")
        if self.conversations:
            raise ValueError(
                "conversations can't be opened on a web chat: its conversations are browser "
                "sessions, opened by the visitors"
            )
        return self
