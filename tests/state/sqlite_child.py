"""A child process for test_state_sqlite: counts in a sqlite state store until killed.

``python sqlite_child.py <path>``: load the scope ``kit.Consumer/devices/kitchen``, save the
count plus one, print ``<count> <version>`` once ``save`` has returned, again and again.
"""

from __future__ import annotations

import asyncio
import sys

from layer.state import SqliteStateStore, StateKey


async def main(path: str) -> None:
    store = SqliteStateStore(path)
    key = StateKey("kit.Consumer", "devices", "kitchen")
    state = await store.load(key)
    count = int(state.data) if state is not None else 0
    version = state.version if state is not None else None
    while True:
        count += 1
        version = await store.save(
            key, b"%d" % count, expect_version=version, applied_keys=[f"m{count}"]
        )
        print(count, version, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
