"""One XMPP client stream on slixmpp, made to serve one gateway: sessions, errors, acks.

``XmppClient`` is a slixmpp ``ClientXMPP`` (RFC 6120 streams, STARTTLS, SASL, resource
binding) with the plugins the gateway uses: XEP-0030 service discovery, XEP-0045 multi-user
chat, XEP-0198 stream management, XEP-0199 ping, XEP-0203 delayed delivery, XEP-0359 stanza
ids and XEP-0085 chat states. It lives as long as the gateway, so that stream management can
resume the session after a lost connection (the server then resends what it had not been
told we received, and we what it had not acknowledged). What differs from slixmpp's own
behaviour:

- slixmpp retries failed connections by itself, forever; here ``open()`` makes one attempt
  (``cancel_connection_attempt``) and the gateway retries with tenacity;
- TLS is the gateway's own ``ssl.SSLContext`` (its certificate authorities, its checks) and
  one transport: STARTTLS (RFC 6120 section 5) or direct TLS (XEP-0368), never clear text;
- a refused password, a server without STARTTLS and a certificate that fails the check are
  recorded (``failure``) as errors that retrying would not cure;
- messages the server had not acknowledged when a session could not be resumed (the server
  restarted) are sent again in the next session (``take_unacked``) instead of being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import weakref
from collections.abc import Callable
from typing import Any, Literal

import slixmpp
from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout, PresenceError
from slixmpp.stanza import Message

from gateways.base import GatewayError

__all__ = ["SessionFailure", "XmppClient"]

logger = logging.getLogger(__name__)

_PLUGINS = (
    "xep_0030",
    "xep_0045",
    "xep_0085",
    "xep_0172",
    "xep_0198",
    "xep_0199",
    "xep_0203",
    "xep_0359",
    "xep_0461",
)


class _RefusalNoise(logging.Filter):
    """Drops slixmpp's own "No appropriate login method." error, which it logs after the
    server refused every mechanism it tried: the gateway reports the refusal itself, in one
    line that says what happened."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: weakref.WeakSet[XmppClient] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.refused and record.msg == "No appropriate login method.")


_REFUSAL_NOISE = _RefusalNoise()
logging.getLogger("slixmpp.features.feature_mechanisms.mechanisms").addFilter(_REFUSAL_NOISE)


class SessionFailure(Exception):
    """Why a stream did not become a session; ``final`` when retrying would not help
    (credentials, TLS), with ``kind`` ``"auth"`` or ``"tls"``."""

    def __init__(self, message: str, kind: Literal["auth", "tls", "connection"]) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def final(self) -> bool:
        return self.kind != "connection"


class XmppClient(slixmpp.ClientXMPP):
    """The gateway's XMPP client. Create it inside a running loop.

    Args:
        jid: The full JID to bind (``bot@example.org/asgi-gateway``).
        password: The account's password (never logged).
        context: The TLS context.
        direct_tls: Connect with TLS from the first byte (XEP-0368) instead of STARTTLS.
        on_message: Called, not awaited, for every ``<message/>`` stanza with a body, in
            the order the server sent them (one-to-one and groupchat alike).
    """

    def __init__(
        self,
        jid: str,
        password: str,
        *,
        context: ssl.SSLContext,
        direct_tls: bool,
        on_message: Callable[[Message], None],
    ) -> None:
        super().__init__(jid, password, ssl_context=context)
        for plugin in _PLUGINS:
            self.register_plugin(plugin)
        self.plugin["xep_0198"].window = 1  # ask for an ack after every stanza we send
        self.enable_direct_tls = direct_tls
        self.enable_starttls = not direct_tls
        self.enable_plaintext = False
        self.on_message_handler = on_message
        #: Why the last attempt failed, if it did; never holds a secret.
        self.failure: SessionFailure | None = None
        self._outcome: asyncio.Future[str] | None = None
        #: Messages sent and not acknowledged yet by the server (XEP-0198), by object id.
        self._unacked: dict[int, Message] = {}
        self._resend: list[Message] = []
        self.add_event_handler("session_start", self._started)
        self.add_event_handler("session_resumed", self._resumed)
        self.add_event_handler("failed_auth", self._auth_failed)
        self.add_event_handler("no_auth", self._no_auth)
        self.add_event_handler("ssl_invalid_chain", self._bad_certificate)
        self.add_event_handler("connection_failed", self._connection_failed)
        self.add_event_handler("stream_error", self._stream_error)
        self.add_event_handler("disconnected", self._disconnected)
        self.add_event_handler("stanza_acked", self._acked)
        self.add_event_handler("sm_failed", self._sm_failed)
        self.add_event_handler("message", self._message)
        self.add_filter("out", self._track)

    # -- one attempt -----------------------------------------------------------------------

    async def open(self, host: str | None, port: int | None, timeout: float) -> str:  # noqa: ASYNC109
        """Connect, negotiate TLS, authenticate and bind or resume the session: one attempt.

        Args:
            host: Where to connect; ``None``: the DNS SRV records of the JID's domain
                (``_xmpp-client._tcp`` or ``_xmpps-client._tcp``, RFC 6120 section 3.2.1).
            port: Its port (with ``host``).
            timeout: Seconds for the whole attempt.

        Returns:
            ``"started"`` for a new session, ``"resumed"`` for one resumed (XEP-0198).

        Raises:
            SessionFailure: Why it failed (``final`` for credentials and TLS).
        """
        loop = asyncio.get_running_loop()
        self.failure = None
        _REFUSAL_NOISE.refused.discard(self)
        outcome = self._outcome = loop.create_future()
        self.connect(host, port)
        try:
            async with asyncio.timeout(timeout):
                how: str = await outcome
                return how
        except TimeoutError:
            raise SessionFailure(
                f"no session within {timeout} s (connecting, TLS, login or binding)",
                "connection",
            ) from None
        except SessionFailure:
            raise
        finally:
            self._outcome = None
            if not outcome.done() or outcome.exception() is not None:
                await self._close_failed()

    async def _close_failed(self) -> None:
        """End a failed attempt. After a refused login slixmpp tries its other mechanisms and
        then closes the stream itself: wait for that (2 s at most), since aborting while it
        sends logs a traceback; anything else is aborted at once."""
        self.cancel_connection_attempt()
        if self.transport is not None and self.failure is not None and self.failure.kind == "auth":
            with contextlib.suppress(TimeoutError):
                await self.wait_until("disconnected", 2)
        self.abort()

    def _settle(self, result: str | None = None, failure: SessionFailure | None = None) -> None:
        outcome = self._outcome
        if failure is not None and (self.failure is None or failure.final):
            self.failure = failure
        if outcome is None or outcome.done():
            return
        if result is not None:
            outcome.set_result(result)
        elif self.failure is not None and (self.failure.final or failure is not None):
            outcome.set_exception(self.failure)

    def _started(self, _event: Any) -> None:
        self._resend, self._unacked = list(self._unacked.values()), {}
        self._settle("started")

    def _resumed(self, _event: Any) -> None:
        self._settle("resumed")

    def _auth_failed(self, stanza: Any) -> None:
        _REFUSAL_NOISE.refused.add(self)
        condition = stanza["condition"] if stanza is not None else "failure"
        self._settle(failure=SessionFailure(f"the server refused the login ({condition})", "auth"))

    def _no_auth(self, _event: Any) -> None:
        encrypted = isinstance(self.socket, ssl.SSLObject | ssl.SSLSocket)
        if not encrypted:
            failure = SessionFailure(
                "the server did not offer STARTTLS, and the gateway never logs in over an "
                "unencrypted stream (tls.mode: direct connects with TLS from the start)",
                "tls",
            )
        else:
            failure = SessionFailure(
                "the server offers no login method the gateway can use (SASL SCRAM or PLAIN)",
                "auth",
            )
        self._settle(failure=failure)

    def _bad_certificate(self, exc: Any) -> None:
        self._settle(failure=SessionFailure(certificate_problem(exc), "tls"))
        self.abort()

    def _connection_failed(self, error: Any) -> None:
        if isinstance(error, ssl.SSLCertVerificationError):
            self._settle(failure=SessionFailure(certificate_problem(error), "tls"))
        else:
            self._settle(failure=SessionFailure(f"cannot connect: {error}", "connection"))
        self.cancel_connection_attempt()  # one attempt; the gateway retries

    def _stream_error(self, error: Any) -> None:
        condition = error["condition"] if error is not None else "unknown"
        text = error["text"] if error is not None else ""
        problem = f"stream error {condition}" + (f" ({text})" if text else "")
        kind: Literal["auth", "connection"] = (
            "auth" if condition == "not-authorized" else ("connection")
        )
        self._settle(failure=SessionFailure(f"the server ended the stream: {problem}", kind))

    def _disconnected(self, reason: Any) -> None:
        if isinstance(reason, ssl.SSLCertVerificationError):  # during STARTTLS
            self._settle(failure=SessionFailure(certificate_problem(reason), "tls"))
            return
        self._settle(
            failure=SessionFailure(f"connection closed ({reason or 'by the server'})", "connection")
        )

    # -- what the server acknowledged (XEP-0198) -----------------------------------------

    def _track(self, stanza: Any) -> Any:
        # Only while stream management counts our stanzas: without it no ack ever comes.
        if isinstance(stanza, Message) and stanza["body"] and self.plugin["xep_0198"].enabled_out:
            self._unacked[id(stanza)] = stanza
        return stanza

    def _acked(self, stanza: Any) -> None:
        self._unacked.pop(id(stanza), None)

    def _sm_failed(self, _stanza: Any) -> None:
        logger.info("XMPP: the session could not be resumed; a new one starts")

    def take_unacked(self) -> list[Message]:
        """The messages sent in the previous session that the server never acknowledged
        (XEP-0198 section 4), to send again now that a new session started; emptied."""
        resend, self._resend = self._resend, []
        return resend

    @property
    def stream_management(self) -> bool:
        """Whether the server enabled XEP-0198 stream management on this stream."""
        return "stream_management" in self.features

    def acknowledge(self) -> None:
        """Tell the server now how many stanzas we handled (XEP-0198 ``<a h=.../>``), so a
        clean stop leaves nothing for it to deliver again."""
        if self.transport is not None and self.plugin["xep_0198"].enabled_in:
            self.plugin["xep_0198"].send_ack()  # type: ignore[no-untyped-call]

    async def join_room(
        self,
        room: str,
        nick: str,
        password: str | None,
        timeout: float,  # noqa: ASYNC109 (slixmpp's own timeouts take it)
    ) -> None:
        """Join ``room`` as ``nick`` asking for no history (XEP-0045 section 7.2.15), and
        unlock it if the bot just created it.

        A room the bot creates stays locked until its owner configures it; the bot takes the
        service's defaults, an "instant room" (XEP-0045 section 10.1.2).

        Raises:
            TimeoutError: No answer within ``timeout`` seconds.
            GatewayError: The room refused the bot (the message says why), or the new room
                could not be unlocked.
        """
        muc = self.plugin["xep_0045"]
        try:
            presence, *_ = await muc.join_muc_wait(
                JID(room), nick, password=password, maxstanzas=0, timeout=timeout
            )
        except PresenceError as exc:
            raise GatewayError(f"can't join {room} as {nick!r}: {exc.condition}") from exc
        if 201 in presence["muc"]["status_codes"]:
            form = self.plugin["xep_0004"].make_form(ftype="submit")  # type: ignore[no-untyped-call]
            try:
                await muc.set_room_config(JID(room), form, timeout=timeout)
            except (IqError, IqTimeout) as exc:
                raise GatewayError(f"can't unlock the new room {room}: {exc}") from exc

    # -- messages, in order ----------------------------------------------------------------

    def _message(self, message: Message) -> None:
        if message["type"] == "error":
            error = message["error"]
            logger.warning(
                "XMPP: %s refused a message: %s%s",
                message["from"],
                error["condition"],
                f" ({error['text']})" if error["text"] else "",
            )
            return
        if not message["body"]:
            return
        self.on_message_handler(message)


def certificate_problem(error: Any) -> str:
    """The sentence for a server certificate that failed the check."""
    reason = getattr(error, "verify_message", None) or getattr(error, "reason", None) or error
    return (
        f"the server's TLS certificate failed the check: {reason}; set tls.ca_file to the "
        "certificate authority that signed it (or tls.verify: false for a test server)"
    )
