"""What the access policy costs a chat command: round trips with and without ``access:``.

One ``ChatConsumer`` with three commands answers ``N`` commands, each a full round trip
through ``ChatCommunicator`` (event in, rules, rate windows, handler, ``chat.send`` out),
in one process and one run:

- bare: no ``scope["access"]`` (the consumer's open policy: no rules, no rates);
- access: the thermostat's section (a group, two rules on a tag, five more rules that do
  not match first) and both rate limits, set high enough that nothing is cut or delayed.

    python bench/access.py             # 20,000 commands each
    python bench/access.py -n 5000

Reported as the ratio access / bare of the mean round trip; the limit is the issue's: a
refused or allowed command must not cost more than a fraction of what the command itself
costs, so the ratio should stay near 1.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from config.access import AccessConfig
from config.policy import AccessPolicy
from consumers import ChatCommunicator, ChatConsumer, command

SECTION: dict[str, Any] = {
    "groups": {"operators": ["bench:alice", "bench:root"]},
    "rules": [
        *({"commands": [f"other{i}"], "deny": ["*"]} for i in range(5)),
        {"tags": ["device"], "allow": ["group:operators"]},
        {"tags": ["device"], "deny": ["*"]},
    ],
    "rate": {"commands": "1000000/1s", "answers": "1000000/1s"},
}


class Bench(ChatConsumer):
    @command(help="a reading")
    async def temp(self, message: Any, args: list[str]) -> str:
        return "21.5"

    @command(help="a device command", tags=["device"])
    async def heat(self, message: Any, args: list[str]) -> str:
        return "on"


async def round_trips(access: AccessPolicy | None, n: int) -> float:
    """Mean seconds per command over ``n`` (half ``temp``, half ``heat``)."""
    chat = ChatCommunicator(Bench.as_asgi(), platform="bench", user="alice", access=access)
    await chat.connect()
    for _ in range(200):  # warm up
        await chat.say("temp")
        await chat.receive_text()
    started = time.perf_counter()
    for i in range(n):
        await chat.say("heat" if i % 2 else "temp")
        await chat.receive_text()
    elapsed = time.perf_counter() - started
    await chat.disconnect()
    return elapsed / n


async def main(n: int) -> None:
    bare = await round_trips(None, n)
    guarded = await round_trips(AccessPolicy(AccessConfig.model_validate(SECTION)), n)
    print(f"{n:,} commands each, mean round trip:")
    print(f"  bare     {bare * 1e6:8.1f} µs")
    print(f"  access   {guarded * 1e6:8.1f} µs")
    print(f"  access / bare  {guarded / bare:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="commands per run")
    asyncio.run(main(parser.parse_args().n))
