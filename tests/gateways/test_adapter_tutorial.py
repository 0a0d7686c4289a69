"""docs/adapters.md from the docs alone: the adapter file it shows whole, built from the
doc's own code blocks (not from the example package), passes the conformance kit; and its
scopes carry the adapter's own ``spec_version``."""

from __future__ import annotations

import asyncio
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from gateways.base import ASGI_VERSION, Gateway
from gateways.testing.conformance import ConformanceHarness, TransportConformance
from layer.types import ASGIApp, Message, Receive, Scope, Send

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = "examples/lines_gateway/lines_gateway/__init__.py"
WHOLE = re.compile(r"<!-- whole file: (\S+) -->\n```[a-z]*\n(.*?)```", re.DOTALL)


def tutorial_source() -> str:
    """The adapter file as docs/adapters.md shows it: its ``whole file`` blocks, in order."""
    text = (ROOT / "docs" / "adapters.md").read_text()
    blocks = [block for path, block in WHOLE.findall(text) if path == ADAPTER]
    assert blocks, f"docs/adapters.md shows no whole-file block of {ADAPTER}"
    return "\n\n".join(block.strip("\n") for block in blocks) + "\n"


def tutorial_module() -> types.ModuleType:
    """The tutorial's adapter, run from the doc's text as a module of its own."""
    module = types.ModuleType("lines_tutorial")
    sys.modules[module.__name__] = module  # pydantic resolves annotations through it
    exec(compile(tutorial_source(), "docs/adapters.md", "exec"), module.__dict__)  # noqa: S102
    return module


tutorial = tutorial_module()


class TutorialHarness(ConformanceHarness):
    """Scope ``index`` is the key ``k<index>``, each line sent over a connection of its own."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.readers: dict[int, asyncio.StreamReader] = {}

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        gateway: Gateway = tutorial.LinesGateway(
            "tutorial", application, tutorial.LinesOptions(port=0, **options)
        )
        return gateway

    async def send(self, gateway: Gateway, index: int, line: bytes) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)  # type: ignore[attr-defined]
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
        await self.send(gateway, index, b"\xff\xfe not utf-8\n")
        return True

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
            await writer.wait_closed()


class TestTheTutorialAdapterConforms(TransportConformance):
    step_timeout = 5.0

    @pytest.fixture
    def harness(self) -> TutorialHarness:
        return TutorialHarness()


def test_the_doc_shows_the_example_file_whole() -> None:
    def lines(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.strip()]

    assert lines(tutorial_source()) == lines((ROOT / ADAPTER).read_text())


async def test_the_adapter_declares_its_own_spec_version() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        while (await receive())["type"] != "lines.disconnect":
            pass

    gateway = tutorial.LinesGateway("tutorial", app, tutorial.LinesOptions(port=0))
    async with asyncio.timeout(5):
        await gateway.start()
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
            writer.write(b"kitchen 21.5\n")
            await writer.drain()
            while not scopes:
                await asyncio.sleep(0.01)
            writer.close()
        finally:
            await gateway.stop(drain_timeout=1)
    assert scopes[0]["asgi"] == {"version": "3.0", "spec_version": "0.1"}
    assert scopes[0]["scope_key"] == "kitchen"
    assert ASGI_VERSION == {"version": "3.0", "spec_version": "1.0"}  # others' untouched
