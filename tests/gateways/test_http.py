"""The HTTP gateway (``type: http``) on real loopback sockets: requests and responses,
``root_path``, proxy headers from trusted and untrusted addresses, the body and WebSocket
message limits, ``max_connections``, TLS with certificates made by openssl, drain on stop, and
a crashing application call."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from pydantic import ValidationError
from test_irc_tls import make_ca, make_signed, openssl

from config.errors import ConfigError
from config.loader import load_config_text
from gateways.base import GatewayError
from gateways.http import HttpGateway, HttpGatewayOptions
from gateways.http.options import HttpTls
from layer import InMemoryChannelLayer

pytestmark = pytest.mark.timeout(60)

Scope = dict[str, Any]


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            return body
        body += event.get("body", b"")
        if not event.get("more_body"):
            return body


async def reply(send: Any, status: int, data: Any) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class App:
    """Answers every request with what its scope says; ``/slow`` waits for ``release``,
    ``/boom`` raises; a WebSocket is accepted and echoed."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.bodies: list[int] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await self.websocket(receive, send)
            return
        if scope["path"].endswith("/boom"):
            raise RuntimeError("the application broke")
        body = await read_body(receive)
        self.bodies.append(len(body))
        if scope["path"].endswith("/slow"):
            self.entered.set()
            await self.release.wait()
        await reply(
            send,
            200,
            {
                "path": scope["path"],
                "root_path": scope["root_path"],
                "client": scope["client"][0],
                "scheme": scope["scheme"],
                "gateway": scope["gateway"],
                "layer": scope.get("channel_layer") is not None,
                "asgi": scope["asgi"],
                "body": len(body),
            },
        )

    async def websocket(self, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while (event := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": event.get("text") or "bytes"})


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def serve(
    app: App, run_gateway: Callable[[Any], Awaitable[Any]]
) -> Callable[..., Awaitable[HttpGateway]]:
    """``await serve(**options)``: an HTTP gateway of ``app`` on a free port, with a layer."""

    async def start(application: Any = None, **options: Any) -> HttpGateway:
        gateway = HttpGateway(
            "web",
            application or app,
            HttpGatewayOptions(port=0, **options),
            channel_layer=InMemoryChannelLayer(),
        )
        await run_gateway(gateway)
        return gateway

    return start


def client(gateway: HttpGateway, **kwargs: Any) -> httpx.AsyncClient:
    assert gateway.url is not None
    return httpx.AsyncClient(base_url=gateway.url, timeout=10, **kwargs)


def ws_url(gateway: HttpGateway, path: str = "/ws") -> str:
    assert gateway.url is not None
    return gateway.url.replace("http", "ws", 1) + path


async def test_a_request_reaches_the_application_with_the_gateway_keys(serve: Any) -> None:
    gateway = await serve()
    assert gateway.connected
    async with client(gateway) as http:
        answer = await http.post("/things?x=1", content=b"hello")
    assert answer.status_code == 200
    assert answer.json() == {
        "path": "/things",
        "root_path": "",
        "client": "127.0.0.1",
        "scheme": "http",
        "gateway": "web",
        "layer": True,
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "body": 5,
    }
    assert gateway.stats.received == 1
    assert sum(gateway.stats.handling_counts) == 1


async def test_a_websocket_is_echoed_and_counted(serve: Any) -> None:
    gateway = await serve()
    async with websockets.connect(ws_url(gateway)) as ws:
        await ws.send("ping")
        assert await ws.recv() == "ping"
        assert gateway.calls["websocket"] == 1
        assert gateway.connections == 1
    assert gateway.stats.received == 1


async def test_root_path_prefixes_the_path(serve: Any) -> None:
    gateway = await serve(root_path="/api")
    async with client(gateway) as http:
        answer = (await http.get("/things")).json()
    assert answer["root_path"] == "/api"
    assert answer["path"] == "/api/things"


PROXIED = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}


async def test_proxy_headers_from_a_trusted_address_are_taken(serve: Any) -> None:
    gateway = await serve(forwarded_allow_ips=["127.0.0.0/8"])
    async with client(gateway) as http:
        answer = (await http.get("/", headers=PROXIED)).json()
    assert (answer["client"], answer["scheme"]) == ("203.0.113.7", "https")


async def test_proxy_headers_from_an_untrusted_address_are_ignored(serve: Any) -> None:
    gateway = await serve(forwarded_allow_ips=["10.0.0.1"])
    async with client(gateway) as http:
        answer = (await http.get("/", headers=PROXIED)).json()
    assert (answer["client"], answer["scheme"]) == ("127.0.0.1", "http")


async def test_proxy_headers_off_ignores_them_from_anyone(serve: Any) -> None:
    gateway = await serve(proxy_headers=False, forwarded_allow_ips=["*"])
    async with client(gateway) as http:
        answer = (await http.get("/", headers=PROXIED)).json()
    assert answer["client"] == "127.0.0.1"


async def test_a_body_over_the_limit_is_refused_413_unread(serve: Any, app: App) -> None:
    gateway = await serve(max_body_size=100)
    async with client(gateway) as http:
        assert (await http.post("/", content=b"x" * 100)).status_code == 200
        refused = await http.post("/", content=b"x" * 101)
        assert refused.status_code == 413
        assert refused.headers["connection"] == "close"
    assert app.bodies == [100]  # the application never saw the big one


async def test_a_chunked_body_over_the_limit_is_cut_and_refused(serve: Any, app: App) -> None:
    gateway = await serve(max_body_size=100)

    async def chunks(count: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            yield b"x" * 30

    async with client(gateway) as http:
        refused = await http.post("/", content=chunks(5))
        assert refused.status_code == 413
    async with client(gateway) as http:
        small = await http.post("/", content=chunks(3))
    assert small.status_code == 200
    # The application saw the big request end (http.disconnect) before the chunk that
    # crossed the limit, and the small one whole.
    assert app.bodies[0] <= 100
    assert app.bodies[1] == 90


async def test_a_websocket_message_over_the_limit_closes_1009(serve: Any) -> None:
    gateway = await serve(ws_max_size=100)
    async with websockets.connect(ws_url(gateway)) as ws:
        await ws.send("x" * 100)
        assert await ws.recv() == "x" * 100
        await ws.send("x" * 101)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_past_max_connections_a_request_is_answered_503(serve: Any, app: App) -> None:
    gateway = await serve(max_connections=1)
    async with client(gateway) as first, client(gateway) as second:
        slow = asyncio.create_task(first.get("/slow"))
        async with asyncio.timeout(10):
            await app.entered.wait()
        assert (await second.get("/")).status_code == 503
        app.release.set()
        assert (await slow).status_code == 200
    async with client(gateway) as third:  # the first connection is closed: room again
        assert (await third.get("/")).status_code == 200


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem signs server.pem (IP 127.0.0.1) and client.pem."""
    directory = tmp_path_factory.mktemp("http-tls")
    make_ca(directory, "ca")
    make_signed(directory, "server", "ca", "127.0.0.1", "IP:127.0.0.1")
    make_signed(directory, "client", "ca", "browser", None)
    return directory


def tls_options(certificates: Path, **extra: Any) -> dict[str, Any]:
    """The gateway's options with a ``tls`` section of server.pem and server.key, and
    ``extra`` in that section."""
    return {
        "tls": {
            "cert_file": str(certificates / "server.pem"),
            "key_file": str(certificates / "server.key"),
            **extra,
        }
    }


def trusting(certificates: Path, client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
    if client_cert:
        context.load_cert_chain(certificates / "client.pem", certificates / "client.key")
    return context


async def test_tls_serves_https_and_wss(serve: Any, certificates: Path) -> None:
    gateway = await serve(**tls_options(certificates))
    assert gateway.url is not None
    assert gateway.url.startswith("https://127.0.0.1:")
    async with client(gateway, verify=trusting(certificates)) as http:
        assert (await http.get("/")).json()["scheme"] == "https"
    async with websockets.connect(ws_url(gateway), ssl=trusting(certificates)) as ws:
        await ws.send("secure")
        assert await ws.recv() == "secure"


async def test_a_required_client_certificate_is_checked(serve: Any, certificates: Path) -> None:
    options = tls_options(
        certificates, ca_file=str(certificates / "ca.pem"), client_cert="required"
    )
    gateway = await serve(**options)
    async with client(gateway, verify=trusting(certificates, client_cert=True)) as http:
        assert (await http.get("/")).status_code == 200
    async with client(gateway, verify=trusting(certificates)) as http:
        with pytest.raises(httpx.TransportError):
            await http.get("/")


async def test_an_optional_client_certificate_may_be_left_out(
    serve: Any, certificates: Path
) -> None:
    options = tls_options(
        certificates, ca_file=str(certificates / "ca.pem"), client_cert="optional"
    )
    gateway = await serve(**options)
    for with_certificate in (True, False):
        async with client(gateway, verify=trusting(certificates, with_certificate)) as http:
            assert (await http.get("/")).status_code == 200


def test_the_server_context_takes_tls_1_2_and_only_the_ca_file(certificates: Path) -> None:
    tls = HttpTls(
        cert_file=str(certificates / "server.pem"),
        key_file=str(certificates / "server.key"),
        ca_file=str(certificates / "ca.pem"),
        client_cert="required",
    )
    context = tls.server_context("web")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    # Client certificates are checked against ca_file alone, not the system's authorities.
    assert [ca["subject"] for ca in context.get_ca_certs()] == [
        ((("commonName", "asgi-gateway ca"),),)
    ]
    plain = HttpTls(cert_file=str(certificates / "server.pem"), key_file=tls.key_file)
    assert plain.server_context("web").verify_mode == ssl.CERT_NONE


async def test_tls_options_are_checked(tmp_path: Path, certificates: Path) -> None:
    check = HttpGatewayOptions.model_validate
    with pytest.raises(ValidationError, match=r"tls\.cert_file\n.*does not exist"):
        check({"tls": {"cert_file": str(tmp_path / "nope.pem")}})
    with pytest.raises(ValidationError, match=r"tls\.cert_file\n  Field required"):
        check({"tls": {"key_file": str(certificates / "server.key")}})
    with pytest.raises(ValidationError, match=r"tls\.client_cert 'required' needs tls\.ca_file"):
        check(tls_options(certificates, client_cert="required"))
    with pytest.raises(ValidationError, match=r"tls\.client_cert\n"):
        check(tls_options(certificates, client_cert="yes"))
    with pytest.raises(ValidationError, match="ssl_certfile"):  # the flat keys are gone
        check({"ssl_certfile": str(certificates / "server.pem")})
    with pytest.raises(ValidationError, match="forwarded_allow_ips"):
        HttpGatewayOptions(forwarded_allow_ips=["proxy.example"])
    with pytest.raises(ValidationError, match="root_path"):
        HttpGatewayOptions(root_path="api/")


async def test_an_encrypted_key_is_opened_with_key_password(serve: Any, certificates: Path) -> None:
    openssl("ec", "-in", "server.key", "-out", "server-locked.key", "-aes256",
            "-passout", "pass:hunter2-secret", cwd=certificates)  # fmt: skip
    locked = str(certificates / "server-locked.key")
    gateway = await serve(
        **tls_options(certificates, key_file=locked, key_password="hunter2-secret")
    )
    async with client(gateway, verify=trusting(certificates)) as http:
        assert (await http.get("/")).json()["scheme"] == "https"
    wrong = HttpGatewayOptions(**tls_options(certificates, key_file=locked, key_password="nope"))
    with pytest.raises(GatewayError, match="can't load the TLS files") as failed:
        await HttpGateway("web", App(), wrong).start()
    assert locked in str(failed.value)
    assert "nope" not in str(failed.value)


async def test_a_key_file_password_never_shows(certificates: Path, tmp_path: Path) -> None:
    options = HttpGatewayOptions(
        **tls_options(
            certificates, key_file=str(certificates / "ca.pem"), key_password="hunter2-secret"
        )
    )
    assert "hunter2" not in repr(options)
    gateway = HttpGateway("web", App(), options)
    with pytest.raises(GatewayError, match="can't load the TLS files") as failed:
        await gateway.start()
    assert "hunter2" not in str(failed.value)
    assert str(certificates / "ca.pem") in str(failed.value)  # the file is named
    assert not gateway.connected


def test_a_tls_section_in_yaml_is_checked_with_its_line(certificates: Path) -> None:
    text = (
        "application: site:application\n"
        "gateways:\n"
        "  web:\n"
        "    type: http\n"
        "    tls:\n"
        f"      cert_file: {certificates / 'server.pem'}\n"
        "      key_password: hunter2-secret\n"
        "      client_cert: required\n"
    )
    config = load_config_text(text, filename="g.yaml")
    with pytest.raises(
        ConfigError, match=r"g\.yaml:5: gateways\.web\.tls: .*needs tls\.ca_file"
    ) as failed:
        config.validate_gateway_options("web", HttpGatewayOptions)
    assert "hunter2" not in str(failed.value)
    text += f"      ca_file: {certificates / 'ca.pem'}\n"
    options = load_config_text(text).validate_gateway_options("web", HttpGatewayOptions)
    assert options.tls is not None
    assert options.tls.client_cert == "required"
    assert options.tls.key_password is not None
    assert options.tls.key_password.get_secret_value() == "hunter2-secret"


async def test_a_busy_port_is_a_gateway_error(serve: Any) -> None:
    first = await serve()
    second = HttpGateway("web2", App(), HttpGatewayOptions(port=first.port))
    with pytest.raises(GatewayError, match=r"cannot listen on 127\.0\.0\.1"):
        await second.start()


async def refused(gateway_port: int) -> None:
    """Until a new connection to the port is refused (bounded by the test's timeout)."""
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", gateway_port)
        except ConnectionRefusedError:
            return
        writer.close()
        await asyncio.sleep(0.02)


async def test_stop_drains_in_flight_requests_and_refuses_new_connections(
    serve: Any, app: App
) -> None:
    gateway = await serve()
    port = gateway.port
    assert port is not None
    async with client(gateway) as http, websockets.connect(ws_url(gateway)) as ws:
        slow = asyncio.create_task(http.get("/slow"))
        async with asyncio.timeout(10):
            await app.entered.wait()
        stopping = asyncio.create_task(gateway.stop(drain_timeout=20))
        await refused(port)
        assert not gateway.connected
        # The open WebSocket is told the service restarts (RFC 6455 section 7.4.1: 1012).
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012
        assert not stopping.done()  # still waiting for the request in flight
        app.release.set()
        answer = await slow
        assert answer.status_code == 200
        await stopping
    assert gateway.calls == {"http": 0, "websocket": 0}


async def test_stop_cancels_what_outlives_the_graceful_timeout(serve: Any, app: App) -> None:
    gateway = await serve(graceful_shutdown=0.2)
    async with client(gateway) as http:
        slow = asyncio.create_task(http.get("/slow"))
        async with asyncio.timeout(10):
            await app.entered.wait()
        await gateway.stop(drain_timeout=30)
        # uvicorn cancelled the call, and answered 500 for it as no response had started.
        assert (await slow).status_code == 500
    assert gateway.calls == {"http": 0, "websocket": 0}


async def test_a_crashing_call_is_logged_with_the_gateway_and_serving_goes_on(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await serve()
    with caplog.at_level(logging.ERROR):
        async with client(gateway) as http:
            assert (await http.get("/boom")).status_code == 500
            assert (await http.get("/fine")).status_code == 200
    crashes = [
        r for r in caplog.records if r.exc_info and "application broke" in str(r.exc_info[1])
    ]
    assert len(crashes) == 1
    assert crashes[0].getMessage().startswith("Gateway 'web': Exception in ASGI application")
    assert getattr(crashes[0], "gateway", None) == "web"


async def test_the_access_log_is_per_gateway(
    serve: Any, run_gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    quiet = await serve()
    loud = HttpGateway("loud", App(), HttpGatewayOptions(port=0, access_log=True))
    await run_gateway(loud)
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        async with client(quiet) as http:
            await http.get("/from-quiet")
        async with client(loud) as http:
            await http.get("/from-loud")
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("Gateway 'loud'" in line and "/from-loud" in line for line in lines)
    assert not any("/from-quiet" in line for line in lines)
