"""``SqliteStateStore`` beyond the kit: a save that returned survives SIGKILL, WAL mode, and
clear errors for a file that is locked, not a database, or of another schema."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from gateways.testing.state import kit_key
from layer.state import SqliteStateStore, StateError, StoreUnavailable

pytestmark = pytest.mark.timeout(60)

CHILD = Path(__file__).with_name("sqlite_child.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kills", [1, 3])
async def test_a_save_that_returned_survives_sigkill(tmp_path: Path, kills: int) -> None:
    """A child saves again and again, printing each save once it returned; it is killed
    (SIGKILL) right after one: a new store on the file has that save, or a later one."""
    path = tmp_path / "state.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    last_count = 0
    for _ in range(kills):
        child = await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), str(path), stdout=asyncio.subprocess.PIPE, env=env
        )
        try:
            assert child.stdout is not None
            async with asyncio.timeout(20):
                for _ in range(40):  # let it run a little, then kill it right after a save
                    line = await child.stdout.readline()
                    assert line, "the child ended before it was killed"
            child.send_signal(signal.SIGKILL)
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()
        count, version = (int(word) for word in line.split())
        assert count > last_count
        last_count = count
        store = SqliteStateStore(path)
        try:
            state = await store.load(kit_key())
        finally:
            await store.close()
        assert state is not None
        # The child may have saved once more after the line we read, never less.
        assert int(state.data) >= count
        assert state.version >= version
        assert state.has_applied(f"m{count}")
        assert len(state.applied) == min(int(state.data), 1000)


async def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.sqlite3")
    await store.save(kit_key(), b"x", expect_version=None)
    await store.close()
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_file_locked_by_another_writer_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = SqliteStateStore(path, busy_timeout=0.2)
    await store.ping()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="locked") as caught:
            await store.save(kit_key(), b"x", expect_version=None)
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        other.execute("ROLLBACK")
        assert await store.save(kit_key(), b"x", expect_version=None) >= 1
    finally:
        other.close()
        await store.close()


async def test_a_file_that_is_not_a_database_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database, it is a text file\n" * 100)
    store = SqliteStateStore(path)
    try:
        with pytest.raises(StateError, match="not a database") as caught:
            await store.load(kit_key())
        assert not isinstance(caught.value, StoreUnavailable)
    finally:
        await store.close()


async def test_a_file_of_another_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = SqliteStateStore(path)
    await store.ping()
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 99 WHERE name = 'schema'")
    db.close()
    store = SqliteStateStore(path)
    try:
        with pytest.raises(StateError, match="schema 99"):
            await store.ping()
    finally:
        await store.close()


async def test_a_directory_that_does_not_exist_is_unavailable(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "missing" / "state.sqlite3")
    try:
        with pytest.raises(StoreUnavailable, match="unable to open"):
            await store.ping()
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"synchronous": "off"}, "synchronous must be 'full' or 'normal'"),
        ({"busy_timeout": -1}, "busy_timeout must be seconds"),
        ({"applied_window": 0}, "applied_window must be an int from 1"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict[str, object], problem: str) -> None:
    with pytest.raises(StateError, match=problem):
        SqliteStateStore(tmp_path / "s.sqlite3", **options)  # type: ignore[arg-type]
