"""WebSocket echo round trips with 100 clients through ``type: http`` (``HttpGateway``)
against Channels on Daphne with Channels' ``InMemoryChannelLayer``; same machine, same run.

Both servers run the same application, in a process of their own, one at a time: Channels'
own ``AsyncWebsocketConsumer`` (unchanged) that echoes each text message. With ``--via-layer``
(the default) each message goes through the channel layer first: the consumer sends it to its
own channel (``channel_layer.send(self.channel_name, ...)``) and echoes it when the layer
delivers it, so the layer's path is measured too: asgi-gateway's ``InMemoryChannelLayer``
(the daemon's layer, which the gateway gives Channels through ``channel_layers``) against
Channels' own. ``--direct`` echoes at once. The load: ``--clients`` WebSocket connections
(``websockets`` library) in ``--client-processes`` other processes, each sending a 32-byte
message and waiting for its echo, again, for ``--seconds``. The rounds alternate the servers;
the table shows round trips per second and the ratio (goal: faster than Daphne).

    python bench/websocket_echo.py
    python bench/websocket_echo.py --direct --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import django
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

if not settings.configured:
    settings.configure(
        DATABASES={},
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels.layers.InMemoryChannelLayer",
                "CONFIG": {"capacity": 1000},
            }
        },
    )
    django.setup()

VIA_LAYER = os.environ.get("BENCH_VIA_LAYER", "1") == "1"


class Echo(AsyncWebsocketConsumer):
    """Channels' consumer: each text message back, through the channel layer or at once."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if VIA_LAYER:
            await self.channel_layer.send(self.channel_name, {"type": "echo", "text": text_data})
        else:
            await self.send(text_data=text_data)

    async def echo(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


application = Echo.as_asgi()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve_gateway(port: int) -> None:
    """The gateway's server process, until SIGTERM."""
    from gateways.http import HttpGateway, HttpGatewayOptions
    from layer import InMemoryChannelLayer

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    layer = InMemoryChannelLayer(capacity=1000)
    gateway = HttpGateway("bench", application, HttpGatewayOptions(port=port), channel_layer=layer)
    await gateway.start()
    print("ready", flush=True)
    await stop.wait()
    await gateway.stop(drain_timeout=2)


async def load(url: str, seconds: float, clients: int) -> None:
    """A load process: ``clients`` connections echoing in a loop; prints the round trips."""
    import websockets

    connections = [await websockets.connect(url, compression=None) for _ in range(clients)]
    count = 0
    deadline = time.monotonic() + seconds
    payload = "x" * 32

    async def one(ws: Any) -> None:
        nonlocal count
        while time.monotonic() < deadline:
            await ws.send(payload)
            if await ws.recv() == payload:
                count += 1

    await asyncio.gather(*(one(ws) for ws in connections))
    for ws in connections:
        await ws.close()
    print(count, flush=True)


def start_server(kind: str, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    here = Path(__file__).resolve().parent
    if kind == "daphne":
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                   "--verbosity", "0", "websocket_echo:application"]  # fmt: skip
        server = subprocess.Popen(command, cwd=here, env=env, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # Daphne prints nothing at verbosity 0
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return server
            except OSError:
                time.sleep(0.1)
        raise SystemExit("daphne did not start")
    command = [sys.executable, __file__, "--serve", "--port", str(port)]
    server = subprocess.Popen(command, cwd=here, env=env, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    if server.stdout.readline().strip() != "ready":
        raise SystemExit("the gateway did not start")
    return server


def run_round(kind: str, args: argparse.Namespace) -> float:
    """Start ``kind``'s server, load it (after a warm-up), stop it; round trips per second."""
    port = free_port()
    here = str(Path(__file__).resolve().parent)
    path = os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "PYTHONPATH": path, "BENCH_VIA_LAYER": "1" if args.via_layer else "0"}
    server = start_server(kind, port, env)
    try:
        url = f"ws://127.0.0.1:{port}/"
        per_process = max(1, args.clients // args.client_processes)
        totals = []
        for seconds in (args.warmup, args.seconds):
            command = [sys.executable, __file__, "--load", url, "--seconds", str(seconds),
                       "--clients", str(per_process)]  # fmt: skip
            loads = [
                subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
                for _ in range(args.client_processes)
            ]
            totals.append(sum(int(p.communicate()[0].strip() or 0) for p in loads))
        return totals[-1] / args.seconds
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up load")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each server")
    parser.add_argument("--clients", type=int, default=100, help="WebSocket connections in all")
    parser.add_argument("--client-processes", type=int, default=1, help="load processes")
    parser.add_argument(
        "--direct", dest="via_layer", action="store_false", help="echo without the layer"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_gateway(args.port))
        return
    if args.load:
        asyncio.run(load(args.load, args.seconds, args.clients))
        return
    rates: dict[str, list[float]] = {"daphne": [], "gateway": []}
    path = "through the channel layer" if args.via_layer else "direct"
    print(f"{args.clients} clients, echo {path}")
    print(f"{'round':>5}  {'server':<28} {'round trips/s':>14}")
    for number in range(1, args.rounds + 1):
        order = ["daphne", "gateway"] if number % 2 else ["gateway", "daphne"]
        for kind in order:
            rate = run_round(kind, args)
            rates[kind].append(rate)
            label = "Channels on Daphne" if kind == "daphne" else "type: http (gateway)"
            print(f"{number:>5}  {label:<28} {rate:>14,.0f}", flush=True)
    daphne = sum(rates["daphne"]) / len(rates["daphne"])
    gateway = sum(rates["gateway"]) / len(rates["gateway"])
    print(f"\nDaphne {daphne:,.0f}/s, type: http {gateway:,.0f}/s: "
          f"ratio {gateway / daphne:.2f}x (goal: above 1x)")  # fmt: skip


if __name__ == "__main__":
    main()
