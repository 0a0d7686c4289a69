"""Memory per idle web chat session, against a bare aiohttp WebSocket in the same run.

A server process is started for each kind and size; this process then opens N WebSocket
clients to it (aiohttp, on loopback) and leaves them connected and idle. What the server
process grew by, in RSS (``/proc/<pid>/status`` ``VmRSS``) and in Python allocations
(``tracemalloc``, asked of the server over its stdin), divided by N, is the memory per
session. The kinds:

- ``bare``: an aiohttp server whose WebSocket handler echoes one hello and waits (no gateway):
  the peer, the cost of an idle aiohttp WebSocket itself;
- ``session``: ``type: webchat``, each client sent ``hello`` and got ``welcome`` (a session,
  no conversation yet);
- ``conversation``: the same, and each client sent one message and got its answer (a
  session, and its conversation's scope with a live ``ChatConsumer`` instance).

    python bench/webchat_memory.py                 # N = 1,000 and 5,000
    python bench/webchat_memory.py -n 2000

The report gives KB per session and the ratio to ``bare``. Target (issue 23): a session
with its conversation at most 4 times a bare aiohttp WebSocket.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp

TARGET_RATIO = 4.0


def rss(pid: int) -> int:
    """The resident set of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# -- the server process -------------------------------------------------------------------


async def serve(kind: str) -> None:
    from aiohttp import web

    from consumers import ChatConsumer, ProtocolTypeRouter
    from gateways.listener import bound_url, listen
    from gateways.webchat import WebChatGateway, WebChatGatewayOptions

    class Echo(ChatConsumer):
        async def receive(self, message: Any) -> None:
            await self.reply(message, message["text"])

    tracemalloc.start()
    stop: Any
    if kind == "bare":

        async def socket(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(heartbeat=30)
            await ws.prepare(request)
            async for message in ws:
                await ws.send_str(message.data)
            return ws

        app = web.Application()
        app.router.add_get("/ws", socket)
        runner = await listen(app, "127.0.0.1", 0, "bare")
        url, stop = bound_url(runner, "/"), runner.cleanup
    else:
        options = WebChatGatewayOptions(port=0, max_sessions=1_000_000, idle_timeout=None)
        gateway = WebChatGateway("web", ProtocolTypeRouter({"chat": Echo.as_asgi()}), options)
        await gateway.start()
        url, stop = gateway.http_url, gateway.stop
    print(url, flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"measure":
            gc.collect()
            print(tracemalloc.get_traced_memory()[0], flush=True)
    await stop()


# -- the driver ---------------------------------------------------------------------------


class Server:
    def __init__(self, kind: str) -> None:
        self.process = asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve",
            kind,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )

    async def start(self) -> str:
        self.proc = await self.process
        assert self.proc.stdout is not None
        return (await self.proc.stdout.readline()).decode().strip()

    async def measure(self) -> tuple[int, int]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        await asyncio.sleep(1.0)  # let the last frames settle
        self.proc.stdin.write(b"measure\n")
        await self.proc.stdin.drain()
        traced = int(await self.proc.stdout.readline())
        return rss(self.proc.pid), traced

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await asyncio.wait_for(self.proc.wait(), 60)


async def open_clients(
    http: aiohttp.ClientSession, url: str, kind: str, count: int
) -> list[aiohttp.ClientWebSocketResponse]:
    origin = url.rstrip("/")
    gate = asyncio.Semaphore(100)
    sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def one(index: int) -> None:
        async with gate:
            ws = await http.ws_connect(f"{url}ws", headers={"Origin": origin}, autoping=True)
            await ws.send_str(json.dumps({"type": "hello", "session": None, "ack": 0}))
            await ws.receive(timeout=30)
            if kind == "conversation":
                await ws.send_str(json.dumps({"type": "message", "id": "c1", "text": "hi"}))
                while json.loads((await ws.receive(timeout=30)).data)["type"] != "message":
                    pass
            sockets.append(ws)

    await asyncio.gather(*(one(i) for i in range(count)))
    return sockets


async def run(kind: str, count: int) -> dict[str, float]:
    server = Server(kind)
    url = await server.start()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        warm = await open_clients(http, url, kind, 50)
        rss0, traced0 = await server.measure()
        began = time.perf_counter()
        sockets = await open_clients(http, url, kind, count)
        took = time.perf_counter() - began
        rss1, traced1 = await server.measure()
        for ws in [*warm, *sockets]:
            await ws.close()
    await server.stop()
    return {
        "rss_kb": (rss1 - rss0) / count / 1024,
        "traced_kb": (traced1 - traced0) / count / 1024,
        "open_s": took,
    }


async def main(sizes: list[int]) -> int:
    failed = False
    head = f"{'N':>6}  {'kind':<13} {'RSS KB/session':>15} {'traced KB':>10} {'ratio':>6}"
    print(f"{head} {'open s':>7}")
    for count in sizes:
        results = {kind: await run(kind, count) for kind in ("bare", "session", "conversation")}
        bare = results["bare"]["rss_kb"]
        for kind, figures in results.items():
            ratio = figures["rss_kb"] / bare if bare > 0 else float("nan")
            print(
                f"{count:>6}  {kind:<13} {figures['rss_kb']:>15.2f} {figures['traced_kb']:>10.2f}"
                f" {ratio:>6.2f} {figures['open_s']:>7.2f}"
            )
        conversation = results["conversation"]["rss_kb"] / bare if bare > 0 else float("inf")
        failed |= conversation > TARGET_RATIO
    print(f"target: a session with its conversation at most {TARGET_RATIO:g} x a bare WebSocket")
    print("FAIL" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, action="append", help="sessions (repeatable)")
    parser.add_argument(
        "--serve", choices=["bare", "session", "conversation"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
    else:
        sys.exit(asyncio.run(main(args.n or [1000, 5000])))
