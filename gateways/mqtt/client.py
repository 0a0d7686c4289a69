"""Build the aiomqtt client of an MQTT gateway from its options: CONNECT, will and TLS.

The client is made once and entered again on every reconnect (``async with client``), so
its client identifier, credentials and session settings stay the same across outages.

A TLS handshake that fails (the broker's certificate refused, say) closes its socket at
once (``ClosingSSLSocket``). paho-mqtt 2.x does not: ``Client._ssl_wrap_socket`` calls
``do_handshake()`` and lets the error go with the socket still open, and aiomqtt's
``raise MqttError(...) from None`` keeps that error, its traceback and so the socket alive,
until the garbage collector finalises it with a ResourceWarning at some later moment.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.client import Client as PahoClient

from gateways.mqtt.options import MqttGatewayOptions, MqttTls
from gateways.mqtt.properties import connect_properties, mend_paho_strings

__all__ = ["ClosingSSLSocket", "make_client", "no_delay", "tls_context"]


class ClosingSSLSocket(ssl.SSLSocket):
    """An ``ssl.SSLSocket`` that closes itself when its handshake fails, before the error
    goes on (``SSLContext.sslsocket_class``; see the module's docstring). A non-blocking
    handshake that only has to wait (``SSLWantReadError``, ``SSLWantWriteError``) is not a
    failure and leaves the socket open."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except BaseException:
            self.close()
            raise


def make_client(gateway: str, client_id: str, options: MqttGatewayOptions) -> aiomqtt.Client:
    """The aiomqtt client that connects to ``options.broker``.

    MQTT 5 uses Clean Start, the Session Expiry Interval and Receive Maximum (MQTT 5.0
    sections 3.1.2.4, 3.1.2.11.2 and 3.1.2.11.3); MQTT 3.1.1 uses Clean Session (MQTT 3.1.1
    section 3.1.2.4). ``username`` and ``password`` options override those of the broker URL.
    On MQTT 5, paho is first made to keep U+FEFF in received properties
    (``properties.mend_paho_strings``, MQTT 5.0 section 1.5.4).

    Args:
        gateway: The gateway's name, for error messages.
        client_id: The MQTT client identifier.
        options: The gateway's options.

    Returns:
        A client, not connected yet. Needs a running event loop.

    Raises:
        GatewayError: An ``mqtts://`` broker and TLS files that can't be loaded.
    """
    address = options.address
    mqtt5 = options.protocol == "5"
    properties = None
    if mqtt5:
        mend_paho_strings()
        properties = connect_properties(options.effective_session_expiry, options.receive_maximum)
    will = None
    if options.will is not None:
        will = aiomqtt.Will(
            options.will.topic,
            options.will.payload.encode(),
            options.will.qos,
            options.will.retain,
        )
    password = address.password
    if options.password is not None:
        password = options.password.get_secret_value()
    return aiomqtt.Client(
        address.host,
        address.port,
        username=options.username if options.username is not None else address.username,
        password=password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5 if mqtt5 else aiomqtt.ProtocolVersion.V311,
        will=will,
        clean_session=None if mqtt5 else options.clean_start,
        clean_start=options.clean_start if mqtt5 else MQTT_CLEAN_START_FIRST_ONLY,
        keepalive=options.keepalive,
        properties=properties,
        tls_context=tls_context(gateway, options) if address.scheme == "mqtts" else None,
    )


def tls_context(gateway: str, options: MqttGatewayOptions) -> ssl.SSLContext:
    """The TLS context of an ``mqtts://`` broker: the system's CAs or ``tls.ca_file``, a
    client certificate if ``tls.cert_file``, no checks at all if ``tls.insecure``. Its
    sockets are ``ClosingSSLSocket``: closed when the handshake fails.

    Args:
        gateway: The gateway's name, for error messages.
        options: The gateway's options.

    Raises:
        GatewayError: A TLS file can't be read or is not valid.
    """
    tls = options.tls or MqttTls()
    context = tls.context(gateway, verify=not tls.insecure)
    context.sslsocket_class = ClosingSSLSocket
    return context


def no_delay(paho: PahoClient) -> None:
    """Turn Nagle's algorithm off (``TCP_NODELAY``) on every socket ``paho`` opens, before
    aiomqtt's own ``on_socket_open`` runs.

    An MQTT client writes small packets back to back: a QoS 1 message's PUBACK, then the
    answer the application published. With Nagle the second waits until the broker has
    acknowledged the first at the TCP level, which a delayed ACK holds back some 40 ms
    (``bench/cluster_ownership.py`` measured 41.7 ms for a round trip through one daemon
    with it, 2.2 ms through two without that wait). A socket that has no such option (a
    WebSocket wrapper) is left as it is.
    """
    opened = paho.on_socket_open

    def on_socket_open(client: PahoClient, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if opened is not None:
            opened(client, userdata, sock)

    paho.on_socket_open = on_socket_open
