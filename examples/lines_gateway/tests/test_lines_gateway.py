"""The lines adapter: discovered through its entry point, conformant, and robust to bad lines.

Run after ``pip install -e examples/lines_gateway`` (as .ci/run does).
"""

from __future__ import annotations

import asyncio
import os
import runpy
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lines_gateway import LinesGateway, LinesOptions

from gateways.base import Gateway
from gateways.daemon.registry import installed_gateways, resolve_gateway
from gateways.testing.conformance import ConformanceHarness, TransportConformance
from layer.types import ASGIApp, Message


class LinesHarness(ConformanceHarness):
    """Scope ``index`` is the key ``k<index>``, each line sent over a TCP connection of its own."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        #: The connection of each index's latest line, where its replies arrive.
        self.readers: dict[int, asyncio.StreamReader] = {}

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return LinesGateway("lines", application, LinesOptions(port=0, **options))

    async def send(self, gateway: Gateway, index: int, line: bytes) -> None:
        assert isinstance(gateway, LinesGateway)
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        self.readers[index] = reader
        self.writers.append(writer)
        writer.write(line)
        await writer.drain()

    async def trigger(self, gateway: Gateway, index: int) -> None:
        await self.send(gateway, index, f"k{index} hello\n".encode())

    def reply(self, index: int) -> Message | None:
        return {"type": "lines.send", "text": "pong"}

    async def received_reply(self, gateway: Gateway, index: int) -> None:
        assert await self.readers[index].readline() == f"k{index} pong\n".encode()

    async def trigger_malformed(self, gateway: Gateway, index: int) -> bool:
        await self.send(gateway, index, b"no-space-here\n")
        return True

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
            await writer.wait_closed()


class TestLinesConformance(TransportConformance):
    @pytest.fixture
    def harness(self) -> LinesHarness:
        return LinesHarness()


def test_the_installed_package_is_found_by_its_entry_point() -> None:
    (entry,) = installed_gateways()["lines"]
    assert entry.distribution.startswith("asgi-gateway-lines ")
    assert resolve_gateway("lines") is LinesGateway


#: The demo's application: each line answered with its key's running count, upper-cased.
echo = runpy.run_path(str(Path(__file__).resolve().parents[1] / "demo" / "app.py"))["application"]


@pytest.fixture
async def gateway() -> AsyncIterator[LinesGateway]:
    gw = LinesGateway("lines", echo, LinesOptions(port=0, max_line=64))
    async with asyncio.timeout(5):
        await gw.start()
    yield gw
    async with asyncio.timeout(10):
        await gw.stop(drain_timeout=1)


async def test_one_scope_per_key_across_connections(gateway: LinesGateway) -> None:
    async with asyncio.timeout(5):
        reader_a, writer_a = await asyncio.open_connection("127.0.0.1", gateway.port)
        reader_b, writer_b = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer_a.write(b"kitchen 21.5\n")
        assert await reader_a.readline() == b"kitchen 1 21.5\n"
        writer_b.write(b"kitchen 22.0\nhall on\n")  # the same scope from another connection
        assert await reader_b.readline() == b"kitchen 2 22.0\n"
        assert await reader_b.readline() == b"hall 1 ON\n"
        for writer in (writer_a, writer_b):
            writer.close()
            await writer.wait_closed()


async def test_a_bad_line_is_refused_and_the_connection_goes_on(
    gateway: LinesGateway, caplog: pytest.LogCaptureFixture
) -> None:
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(b"nospace\n\xff\xfe bad\nkitchen ok\n")
        assert await reader.readline() == b"ERR expected '<key> <text>', got 'nospace'\n"
        assert await reader.readline() == b"ERR line is not UTF-8\n"
        assert await reader.readline() == b"kitchen 1 OK\n"
        writer.write(b"x" * 100 + b"\n")  # over max_line: refused, connection dropped
        assert await reader.readline() == b"ERR line over 64 bytes\n"
        assert await reader.readline() == b""
        writer.close()
        await writer.wait_closed()
    assert "refused a line from 127.0.0.1:" in caplog.text
    assert "kitchen" in gateway.instances


DEMO = Path(__file__).resolve().parents[1] / "demo"


async def test_the_demo_runs_in_the_daemon_by_its_entry_point_name() -> None:
    """``asgi-gateway run demo/gateway.yaml``: ``type: lines`` found through the entry point."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateways",
        "run",
        str(DEMO / "gateway.yaml"),
        env={**os.environ, "LINES_PORT": str(port)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(20):
            while True:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    break
                except OSError:
                    if process.returncode is not None:
                        pytest.fail(f"the daemon exited with {process.returncode}")
                    await asyncio.sleep(0.05)
            writer.write(b"kitchen 21.5\nkitchen 22\n")
            assert await reader.readline() == b"kitchen 1 21.5\n"
            assert await reader.readline() == b"kitchen 2 22\n"
            writer.close()
            await writer.wait_closed()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    assert "Gateway 'sensors' (lines) started" in output


async def test_check_validates_the_adapters_options_with_path_and_line(tmp_path: Path) -> None:
    """``asgi-gateway check`` validates a plug-in's YAML options as it does the built-ins'."""
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: app:application\n"
        "gateways:\n"
        "  sensors:\n"
        "    type: lines\n"
        "    max_lin: 64\n"
        "    port: -1\n"
    )
    (tmp_path / "app.py").write_text((DEMO / "app.py").read_text())
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateways",
        "check",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(30):
        output = (await process.communicate())[0].decode()
    assert process.returncode == 2, output
    assert "gateway.yaml:5: gateways.sensors.max_lin: unknown key 'max_lin'" in output
    assert "gateway.yaml:6: gateways.sensors.port:" in output
