"""HTTP requests per second through ``type: http`` (``HttpGateway``) against the same ASGI
application on uvicorn alone, same machine, same run.

Each server runs in a process of its own, one at a time, serving the same tiny ASGI
application (``200``, ``text/plain``, 13 bytes) with the same uvicorn settings (its default
HTTP parser, no access log, lifespan off): once as a plain ``uvicorn.Server``, once as an
``HttpGateway`` (with an in-memory channel layer in every scope and the default body limit).
The load comes from ``--client-processes`` other processes, each with aiohttp keep-alive
connections (``--concurrency`` in all) sending GET requests for ``--seconds``. The rounds
alternate the two servers; the table shows each round and the ratio of the totals
(goal: the gateway at 0.9x uvicorn's rate or better).

    python bench/http_server.py
    python bench/http_server.py --seconds 10 --rounds 3 --concurrency 100
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import time
from typing import Any

BODY = b"Hello, world!"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The application both servers serve: read the request, answer ``Hello, world!``."""
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve(kind: str, port: int) -> None:
    """A server process: ``uvicorn`` alone or ``gateway``, until SIGTERM."""
    import uvicorn

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if kind == "uvicorn":
        config = uvicorn.Config(
            application, port=port, lifespan="off", access_log=False, log_level="warning",
            ws="websockets-sansio", interface="asgi3",
        )  # fmt: skip
        server = uvicorn.Server(config)
        config.load()
        server.lifespan = config.lifespan_class(config)
        await server.startup()
        main = asyncio.create_task(server.main_loop())
        print("ready", flush=True)
        await stop.wait()
        server.should_exit = True
        await main
        await server.shutdown()
    else:
        from gateways.http import HttpGateway, HttpGatewayOptions
        from layer import InMemoryChannelLayer

        gateway = HttpGateway(
            "bench",
            application,
            HttpGatewayOptions(port=port),
            channel_layer=InMemoryChannelLayer(),
        )
        await gateway.start()
        print("ready", flush=True)
        await stop.wait()
        await gateway.stop(drain_timeout=2)


async def load(url: str, seconds: float, concurrency: int) -> None:
    """A load process: ``concurrency`` keep-alive connections in a loop; prints the count."""
    import aiohttp

    count = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal count
            while time.monotonic() < deadline:
                async with session.get(url) as response:
                    await response.read()
                    if response.status == 200:
                        count += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    print(count, flush=True)


def run_round(kind: str, args: argparse.Namespace) -> float:
    """Start ``kind``'s server, load it (after a warm-up), stop it; requests per second."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit(f"the {kind} server did not start")
        url = f"http://127.0.0.1:{port}/"
        per_process = max(1, args.concurrency // args.client_processes)
        totals = []
        for seconds in (args.warmup, args.seconds):
            clients = [
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--load",
                        url,
                        "--seconds",
                        str(seconds),
                        "--concurrency",
                        str(per_process),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(args.client_processes)
            ]
            totals.append(sum(int(c.communicate()[0].strip() or 0) for c in clients))
        return totals[-1] / args.seconds
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up load")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each server")
    parser.add_argument("--concurrency", type=int, default=50, help="connections in all")
    parser.add_argument("--client-processes", type=int, default=1, help="load processes")
    parser.add_argument("--serve", choices=["uvicorn", "gateway"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port))
        return
    if args.load:
        asyncio.run(load(args.load, args.seconds, args.concurrency))
        return
    rates: dict[str, list[float]] = {"uvicorn": [], "gateway": []}
    print(f"{'round':>5}  {'server':<20} {'requests/s':>12}")
    for number in range(1, args.rounds + 1):
        order = ["uvicorn", "gateway"] if number % 2 else ["gateway", "uvicorn"]
        for kind in order:
            rate = run_round(kind, args)
            rates[kind].append(rate)
            label = "uvicorn alone" if kind == "uvicorn" else "type: http (gateway)"
            print(f"{number:>5}  {label:<20} {rate:>12,.0f}", flush=True)
    alone = sum(rates["uvicorn"]) / len(rates["uvicorn"])
    gateway = sum(rates["gateway"]) / len(rates["gateway"])
    print(f"\nuvicorn alone {alone:,.0f}/s, type: http {gateway:,.0f}/s: "
          f"ratio {gateway / alone:.2f}x (goal 0.9x or better)")  # fmt: skip


if __name__ == "__main__":
    main()
