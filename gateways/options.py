"""Option models that gateways share (YAML keys inside a gateway entry): ``GatewayOptions``, the
options every gateway takes, and the parts several adapters use (``Reconnect``, ``TlsFiles``)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable

from pydantic import ConfigDict, Field, field_validator, model_validator
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never
from tenacity.wait import wait_random_exponential

from config import OptionsModel
from gateways.errors import GatewayError

__all__ = ["GatewayOptions", "Reconnect", "TlsFiles"]


class GatewayOptions(OptionsModel):
    """Options every gateway takes, whatever its protocol (YAML keys of a gateway entry).

    Attributes:
        idle_timeout: Seconds without an event after which a scope ends with reason
            ``"idle"``; ``None`` keeps scopes until eviction or shutdown.
        max_scopes: Most live scopes; opening one more evicts the least recently used.
        max_queued_events: Most events waiting for one scope's application instance; when full,
            the gateway waits (back-pressure on the transport) rather than drop.
        disconnect_grace: Seconds an instance has to return after its disconnect event
            before it is cancelled.
    """

    idle_timeout: float | None = Field(default=600.0, gt=0)
    max_scopes: int = Field(default=100_000, ge=1)
    max_queued_events: int = Field(default=100, ge=1)
    disconnect_grace: float = Field(default=5.0, ge=0)


class _Model(OptionsModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class TlsFiles(_Model):
    """The files of a TLS client: whom to trust, and the client's own certificate.

    Attributes:
        ca_file: PEM file of the certificate authorities to trust; ``None`` uses the system's.
        cert_file: PEM client certificate, for servers that authenticate clients by it.
        key_file: PEM private key of ``cert_file`` (``None`` when it is inside ``cert_file``).
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _exists(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isfile(value):
            raise ValueError(f"TLS file {value!r} does not exist or is not a file")
        return value

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsFiles:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError(f"tls.key_file {self.key_file!r} is set but tls.cert_file is not")
        return self

    def context(self, gateway: str, *, verify: bool) -> ssl.SSLContext:
        """A client context (TLS 1.2 or later): ``ca_file`` or the system's certificate
        authorities, the client certificate if ``cert_file``, and, unless ``verify`` is
        false, checks of the server's certificate and host name.

        Args:
            gateway: The gateway's name, for error messages.
            verify: Check the server's certificate and host name.

        Raises:
            GatewayError: A TLS file can't be read or is not valid PEM.
        """
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_file is not None:
                context.load_cert_chain(self.cert_file, self.key_file)
        except OSError as exc:  # ssl.SSLError is an OSError
            raise GatewayError(f"gateway {gateway!r}: can't load the TLS files: {exc}") from exc
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class Reconnect(_Model):
    """Backoff between connection attempts: exponential from ``initial``, with jitter, capped
    at ``maximum``. A connection that stayed up at least ``maximum`` seconds starts the
    backoff again from ``initial``.

    Attributes:
        initial: Seconds before the first retry.
        maximum: Most seconds between two attempts.
    """

    initial: float = Field(default=1.0, gt=0)
    maximum: float = Field(default=60.0, gt=0)

    def retrying(
        self,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        before_sleep: Callable[[RetryCallState], None],
    ) -> AsyncRetrying:
        """This backoff as tenacity's ``AsyncRetrying``, retrying forever: exponential with
        full jitter (``wait_random_exponential``), from ``initial``, capped at ``maximum``.

        Args:
            retry_on: The errors that count as an outage; any other is raised at once.
            before_sleep: Called before each wait (to log the outage and the delay).

        Returns:
            Call it with the coroutine function of one attempt (``await retrying(run)``);
            each call starts the backoff from ``initial`` again.
        """
        return AsyncRetrying(
            retry=retry_if_exception_type(retry_on),
            wait=wait_random_exponential(multiplier=self.initial, max=self.maximum),
            stop=stop_never,
            before_sleep=before_sleep,
            reraise=True,
        )

    @model_validator(mode="after")
    def _ordered(self) -> Reconnect:
        if self.maximum < self.initial:
            raise ValueError(
                f"reconnect.maximum ({self.maximum}) is below reconnect.initial ({self.initial})"
            )
        return self
