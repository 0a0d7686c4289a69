"""The harnesses that run the state store conformance kit on each built-in store."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from gateways.testing.state import StateStoreHarness
from layer.state import MemoryStateStore, RedisStateStore, SqliteStateStore, StateStore


class MemoryHarness(StateStoreHarness):
    durable: ClassVar[bool] = False

    def make_store(self, **options: Any) -> StateStore:
        return MemoryStateStore(**options)


class SqliteHarness(StateStoreHarness):
    def __init__(self, path: Path) -> None:
        self.path = path

    def make_store(self, **options: Any) -> StateStore:
        return SqliteStateStore(self.path, **options)


class RedisHarness(StateStoreHarness):
    def __init__(self, hosts: list[Any], prefix: str = "gwstate") -> None:
        self.hosts = hosts
        self.prefix = prefix

    def make_store(self, **options: Any) -> StateStore:
        return RedisStateStore(self.hosts, prefix=self.prefix, **options)
