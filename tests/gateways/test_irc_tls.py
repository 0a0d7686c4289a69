"""The IRC gateway over TLS to a real ngircd with a certificate from a test CA: ``ca_file``,
``verify``, the host name check, a client certificate (CertFP), and ``Ngircd(tls=...)``."""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateways.base import GatewayError
from gateways.irc import IrcGateway, IrcGatewayOptions, IrcTlsError
from gateways.irc.options import IrcTls
from gateways.testing.ngircd import Ngircd

pytestmark = pytest.mark.timeout(60)

CURVE = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("openssl is not installed (apt-get install -y openssl)")
    subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, name: str) -> None:
    """<name>.pem / <name>.key: a self-signed certificate authority."""
    openssl("req", "-x509", *CURVE, "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-days", "2", "-subj", f"/CN=asgi-gateway {name}", cwd=directory)  # fmt: skip


def make_signed(directory: Path, name: str, ca: str, common_name: str, san: str | None) -> None:
    """<name>.pem / <name>.key: a certificate for ``common_name`` signed by CA ``ca``."""
    openssl("req", *CURVE, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={common_name}", cwd=directory)  # fmt: skip
    extensions = ["-extfile", f"{name}.ext"] if san is not None else []
    if san is not None:
        (directory / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *extensions,
            cwd=directory)  # fmt: skip


@dataclass
class Certificates:
    directory: Path

    def __getitem__(self, name: str) -> str:
        return str(self.directory / name)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """ca.pem signs server.pem (for IP 127.0.0.1 only) and client.pem; other-ca.pem is a
    certificate authority that signed nothing here."""
    directory = tmp_path_factory.mktemp("irc-tls-certificates")
    make_ca(directory, "ca")
    make_ca(directory, "other-ca")
    make_signed(directory, "server", "ca", "127.0.0.1", "IP:127.0.0.1")
    make_signed(directory, "client", "ca", "gwbot", None)
    return Certificates(directory)


@pytest.fixture
def tls_ngircd(tmp_path: Path, certificates: Certificates) -> Iterator[Ngircd]:
    """ngircd with its clear port (``port``) and a TLS port (``tls_port``)."""
    server = Ngircd(
        tmp_path,
        penalties=False,
        tls=(certificates["server.pem"], certificates["server.key"]),
    )
    try:
        server.start()
    except GatewayError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def make_tls_gateway(
    tls_ngircd: Ngircd, recording_app: Callable[..., Any]
) -> Callable[..., IrcGateway]:
    """``make_tls_gateway(tls, app=None, **options)``: an IRC gateway (not started) to
    ``tls_ngircd``'s TLS port with ``tls`` as its ``tls`` option, nick ``gwbot``, channel
    ``#t``, fast reconnects; ``options`` override those."""

    def make(tls: dict[str, Any], app: Any = None, **options: Any) -> IrcGateway:
        settings: dict[str, Any] = {
            "server": tls_ngircd.host,
            "port": tls_ngircd.tls_port,
            "tls": tls,
            "nick": "gwbot",
            "channels": ["#t"],
            "connect_timeout": 5,
            "send_timeout": 10,
            "reconnect": {"initial": 0.1, "maximum": 1.0},
            "flood": {"burst": 5, "rate": 50},
        }
        settings.update(options)
        app = app if app is not None else recording_app()
        return IrcGateway("irc", app, IrcGatewayOptions(**settings))

    return make


async def whois_lines(human: Any, nick: str) -> list[str]:
    """The lines of ``WHOIS nick`` up to its end (318), as ``human`` got them."""
    await human.send(f"WHOIS {nick}")
    start = human.cursor
    await human.expect(rf" 318 \S+ {re.escape(nick)} ")
    return list(human.lines[start : human.cursor])


async def logged(server: Ngircd, text: str, within: float = 5.0) -> None:
    """Wait until ngircd's log has ``text``."""
    try:
        async with asyncio.timeout(within):
            while text not in server.stderr():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"ngircd did not log {text!r} within {within} s:\n{server.stderr()}")


async def test_the_gateway_talks_over_tls_with_the_ca_file(
    tls_ngircd, certificates, make_tls_gateway, recording_app, run_gateway, irc_human
):
    async def echo(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await log.send({"type": "chat.send", "text": f"echo {event['text']}"})

    app = recording_app(echo)
    gateway = await run_gateway(make_tls_gateway({"ca_file": certificates["ca.pem"]}, app))
    assert gateway.connected
    async with irc_human(tls_ngircd, "alice") as alice:  # a human on the clear port
        await alice.join("#t")
        await alice.wait_member("#t", "gwbot")
        # ngircd says the bot came in over TLS (RPL_WHOISSECURE 275)
        assert any(" 275 alice gwbot " in line for line in await whois_lines(alice, "gwbot"))
        await alice.privmsg("#t", "gwbot: over tls?")
        await alice.expect(r"^:gwbot!\S+ PRIVMSG #t :echo gwbot: over tls\?$")
    (log,) = app.by_key("#t")
    assert log.events[1]["text"] == "gwbot: over tls?"
    assert log.events[1]["mentions_bot"] is True


@pytest.mark.parametrize("ca", [None, "other-ca.pem"], ids=["system-cas", "another-ca"])
async def test_a_certificate_from_an_untrusted_ca_fails_start_clearly(
    ca, certificates, tls_ngircd, make_tls_gateway, run_gateway
):
    tls = {} if ca is None else {"ca_file": certificates[ca]}
    # connect_timeout is long: the failure must come from the check, not from a timeout
    gateway = make_tls_gateway(tls, connect_timeout=30)
    with pytest.raises(IrcTlsError) as raised:
        await run_gateway(gateway)
    message = str(raised.value)
    assert isinstance(raised.value, GatewayError)
    assert f"127.0.0.1:{tls_ngircd.tls_port}" in message
    assert "unable to get local issuer certificate" in message
    assert "tls.ca_file" in message
    assert not gateway.connected


async def test_the_host_name_is_checked(certificates, make_tls_gateway, run_gateway):
    # The certificate is for IP 127.0.0.1 only; "localhost" reaches the same server.
    gateway = make_tls_gateway({"ca_file": certificates["ca.pem"]}, server="localhost")
    with pytest.raises(IrcTlsError, match=r"Hostname mismatch.*'localhost'"):
        await run_gateway(gateway)


async def test_verify_false_connects_to_an_untrusted_certificate(
    tls_ngircd, make_tls_gateway, recording_app, run_gateway, irc_human
):
    app = recording_app()
    gateway = await run_gateway(make_tls_gateway({"verify": False}, app, server="localhost"))
    assert gateway.connected
    async with irc_human(tls_ngircd, "alice") as alice:
        await alice.privmsg("gwbot", "hello")
        await app.wait_for(lambda: bool(app.logs) and len(app.logs[0].events) == 2)
    assert app.logs[0].events[1]["text"] == "hello"


async def test_the_client_certificate_is_presented(
    tls_ngircd, certificates, make_tls_gateway, run_gateway
):
    tls = {
        "ca_file": certificates["ca.pem"],
        "cert_file": certificates["client.pem"],
        "key_file": certificates["client.key"],
    }
    gateway = await run_gateway(make_tls_gateway(tls))
    assert gateway.connected
    # ngircd shows a CertFP in WHOIS only to its owner (276), but logs every certificate.
    await logged(tls_ngircd, 'Got unchecked peer certificate: Distinguished Name "CN=gwbot"')


async def test_without_a_client_certificate_none_is_presented(
    tls_ngircd, certificates, make_tls_gateway, run_gateway
):
    gateway = await run_gateway(make_tls_gateway({"ca_file": certificates["ca.pem"]}))
    assert gateway.connected
    await logged(tls_ngircd, "Peer did not present a certificate")
    assert "Got unchecked peer certificate" not in tls_ngircd.stderr()


async def test_ngircd_serves_a_tls_client_on_its_tls_port(tls_ngircd, certificates):
    context = ssl.create_default_context(cafile=certificates["ca.pem"])
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(
            tls_ngircd.host, tls_ngircd.tls_port, ssl=context
        )
        try:
            writer.write(b"NICK tlsuser\r\nUSER tlsuser 0 * :tls user\r\n")
            await writer.drain()
            while not (line := await reader.readline()).startswith(b":irc.test 001 "):
                assert line, "ngircd closed the TLS connection before the welcome (001)"
        finally:
            writer.close()
            await writer.wait_closed()


def test_tls_files_must_exist_and_a_key_needs_a_certificate(tmp_path, certificates):
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ValidationError, match=re.escape(repr(missing))):
        IrcTls(ca_file=missing)
    with pytest.raises(ValidationError, match=r"tls.key_file .* is set but tls.cert_file is not"):
        IrcTls(key_file=certificates["client.key"])
    options = IrcGatewayOptions(server="irc.example", nick="bot", tls={})
    assert options.tls == IrcTls(verify=True, ca_file=None)
    assert options.effective_port == 6697


async def test_a_ca_file_that_is_not_pem_fails_start(tmp_path, recording_app, run_gateway):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    options = IrcGatewayOptions(server="127.0.0.1", nick="bot", tls={"ca_file": str(bad)})
    gateway = IrcGateway("irc", recording_app(), options)
    with pytest.raises(GatewayError, match=r"gateway 'irc': can't load the TLS files"):
        await run_gateway(gateway)


def test_ngircd_without_tls_has_no_tls_port_and_refuses_a_missing_tls_file(tmp_path):
    assert Ngircd(tmp_path).tls_port is None
    with pytest.raises(GatewayError, match=r"ngircd TLS file .*missing\.pem' does not exist"):
        Ngircd(tmp_path, tls=(tmp_path / "missing.pem", tmp_path / "missing.key"))
