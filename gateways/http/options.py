"""Options of the HTTP gateway (its YAML keys): where it listens, TLS, proxies, limits, drain.

TLS is a ``tls:`` section (``HttpTls``, a ``TlsFiles`` as in the other adapters). Its key's
password is a ``SecretStr``: never logged, never shown by ``asgi-gateway check``, and error
messages name the option or the file without its value.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from gateways.errors import GatewayError
from gateways.options import GatewayOptions, TlsFiles

__all__ = ["HttpGatewayOptions", "HttpTls"]

_CLIENT_CERT = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


class HttpTls(TlsFiles):
    """The server's TLS (``tls:``, HTTPS and WSS): ``TlsFiles``' files, their checks (each
    must exist; ``key_file`` needs ``cert_file``), read as a server's, and:

    Attributes:
        cert_file: PEM certificate chain of the server (required).
        key_file: PEM private key of ``cert_file`` (``None`` when it is inside ``cert_file``).
        key_password: Password of an encrypted key. A secret: never logged, never in an error.
        ca_file: PEM file of the certificate authorities whose client certificates are
            accepted (only these: not the system's).
        client_cert: Client certificates: ``"none"`` (not asked for), ``"optional"``
            (checked when sent) or ``"required"`` (a TLS handshake without one fails); the
            last two need ``ca_file``.

    ``TlsFiles.context`` builds a client's context; the gateway uses ``server_context``.
    """

    cert_file: str
    key_password: SecretStr | None = None
    client_cert: Literal["none", "optional", "required"] = "none"

    @model_validator(mode="after")
    def _client_cert_needs_ca(self) -> HttpTls:
        if self.client_cert != "none" and self.ca_file is None:
            raise ValueError(f"tls.client_cert {self.client_cert!r} needs tls.ca_file")
        return self

    def server_context(self, gateway: str) -> ssl.SSLContext:
        """The server's context (``ssl.Purpose.CLIENT_AUTH``, TLS 1.2 or later): the
        certificate chain, opened with ``key_password``, and client certificates checked
        against ``ca_file`` as ``client_cert`` says.

        Args:
            gateway: The gateway's name, for error messages.

        Raises:
            GatewayError: A TLS file can't be read or is not valid PEM, or the key can't be
                opened with ``key_password``; the message names the file, never the password.
        """
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.ca_file)
        except OSError as exc:  # ssl.SSLError is an OSError
            raise _load_error(gateway, f"tls.ca_file {self.ca_file!r}", exc) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        password = self.key_password
        try:
            context.load_cert_chain(
                self.cert_file,
                self.key_file,
                None if password is None else password.get_secret_value,
            )
        except OSError as exc:
            files = f"tls.cert_file {self.cert_file!r}"
            if self.key_file is not None:
                files += f", tls.key_file {self.key_file!r}"
            raise _load_error(gateway, files, exc) from None
        context.verify_mode = _CLIENT_CERT[self.client_cert]
        return context


def _load_error(gateway: str, files: str, exc: OSError) -> GatewayError:
    return GatewayError(
        f"gateway {gateway!r}: can't load the TLS files ({files}): {exc.strerror or exc}"
    )


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
        tls: Serve HTTPS and WSS (``HttpTls``): ``cert_file`` (required), ``key_file``,
            ``key_password``, ``ca_file`` and ``client_cert``; ``None`` (the default): plain
            HTTP and WS.
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
    tls: HttpTls | None = None
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
