"""Options of the HTTP gateway (its YAML keys): where it listens, TLS, proxies, limits, drain.

The key file's password is a ``SecretStr``: never logged, never shown by ``asgi-gateway
check``, and error messages name the option without its value.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from gateways.options import GatewayOptions

__all__ = ["HttpGatewayOptions"]


class HttpGatewayOptions(GatewayOptions):
    """YAML options of a ``type: http`` gateway (besides ``GatewayOptions``' own, which do
    not apply here: uvicorn calls the application once per HTTP request and once per
    WebSocket connection, and those calls end with their connection, not by idle timeout).

    Attributes:
        host: Address to listen on (``"0.0.0.0"`` or ``"::"`` for every interface).
        port: TCP port to listen on; 0 picks a free one (see ``HttpGateway.url``).
        root_path: The prefix a reverse proxy mounts the application under (``"/api"``), the
            ASGI ``root_path``; ``""``: none. It starts with ``/`` and has no trailing ``/``.
        proxy_headers: Take the client's address and the scheme from ``X-Forwarded-For`` and
            ``X-Forwarded-Proto``, only when the connection comes from ``forwarded_allow_ips``.
        forwarded_allow_ips: The addresses trusted to send proxy headers: IP addresses or
            networks (``"10.0.0.0/8"``), or ``"*"`` for any (only behind a proxy that every
            connection passes).
        ssl_certfile: PEM certificate chain of the server; set it (and ``ssl_keyfile``) to
            serve HTTPS and WSS.
        ssl_keyfile: PEM private key of ``ssl_certfile`` (``None`` when inside it).
        ssl_keyfile_password: The password of an encrypted ``ssl_keyfile``. Never logged.
        ssl_ca_certs: PEM file of the certificate authorities that sign client certificates.
        ssl_client_cert: Client certificates: ``"none"`` (not asked for), ``"optional"``
            (checked when sent) or ``"required"`` (a TLS handshake without one fails); the
            last two need ``ssl_ca_certs``.
        max_body_size: Largest request body, in bytes, passed to the application; a larger
            one is answered 413 and not read further. ``None``: no limit.
        ws_max_size: Largest WebSocket message, in bytes; a larger one closes the connection
            with code 1009 (RFC 6455 section 7.4.1).
        ws_ping_interval: Seconds between WebSocket pings; ``None``: no pings.
        ws_ping_timeout: Seconds to wait for a pong before closing the connection.
        max_connections: Most connections open at once (WebSockets and idle keep-alive ones
            included); a request on one more is answered 503 and its connection closed.
            uvicorn checks it on HTTP requests only, so a WebSocket handshake is never
            refused. ``None``: no limit.
        keep_alive_timeout: Seconds an idle HTTP keep-alive connection stays open.
        graceful_shutdown: Seconds in-flight requests and open WebSockets (closed with code
            1012) have to finish on stop before their tasks are cancelled; ``None``: the
            daemon's ``shutdown_timeout``.
        access_log: Log one line per request (logger ``uvicorn.access``).
        channels_alias: The alias of Channels' ``channel_layers`` pointed at the daemon's
            channel layer at start, so that Channels' own consumers share it; ``None`` leaves
            Channels alone. Needs the ``channels`` package (else nothing is done).
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65_535)
    root_path: str = ""
    proxy_headers: bool = True
    forwarded_allow_ips: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: SecretStr | None = None
    ssl_ca_certs: str | None = None
    ssl_client_cert: Literal["none", "optional", "required"] = "none"
    max_body_size: int | None = Field(default=10 * 1024 * 1024, ge=0)
    ws_max_size: int = Field(default=1024 * 1024, ge=1)
    ws_ping_interval: float | None = Field(default=20.0, gt=0)
    ws_ping_timeout: float | None = Field(default=20.0, gt=0)
    max_connections: int | None = Field(default=None, ge=1)
    keep_alive_timeout: float = Field(default=5.0, gt=0)
    graceful_shutdown: float | None = Field(default=None, ge=0)
    access_log: bool = False
    channels_alias: str | None = "default"

    @field_validator("root_path")
    @classmethod
    def _root_path(cls, value: str) -> str:
        if value and (not value.startswith("/") or value.endswith("/")):
            raise ValueError(f"root_path {value!r} must start with '/' and not end with '/'")
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if address == "*":
                continue
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(
                    f"forwarded_allow_ips: {address!r} is not an IP address, a network or '*'"
                ) from None
        return value

    @field_validator("ssl_certfile", "ssl_keyfile", "ssl_ca_certs")
    @classmethod
    def _exists(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isfile(value):
            raise ValueError(f"TLS file {value!r} does not exist or is not a file")
        return value

    @model_validator(mode="after")
    def _tls_needs(self) -> HttpGatewayOptions:
        if self.ssl_certfile is None:
            for name in ("ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} is set but ssl_certfile is not")
        if self.ssl_client_cert != "none" and self.ssl_ca_certs is None:
            raise ValueError(f"ssl_client_cert {self.ssl_client_cert!r} needs ssl_ca_certs")
        return self

    @property
    def tls(self) -> bool:
        """Whether the gateway serves TLS (HTTPS, WSS): ``ssl_certfile`` is set."""
        return self.ssl_certfile is not None
