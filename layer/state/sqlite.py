"""``SqliteStateStore``: scope state in one SQLite file, the embedded default for one daemon.

The standard library's ``sqlite3`` runs in a thread of its own (one connection, used by that
thread only), so the event loop never waits on the disk; every operation is one job there,
in the order submitted. The file is in WAL mode; each ``save_many`` is one transaction
(``BEGIN IMMEDIATE``, so several processes on one file stay correct: they take turns).

Tables (schema 2, recorded in ``meta``)::

    meta    (name TEXT PRIMARY KEY, value INTEGER)        -- 'schema', 'revision'
    state   (id INTEGER PRIMARY KEY, key TEXT UNIQUE, version INTEGER, data BLOB,
             applied_seq INTEGER)
    applied (scope, seq, idempotency_key)                  -- the window, by (scope, seq)
    timers  (scope, name, due REAL, event TEXT)            -- indexed by (due, scope, name)

``key`` is ``str(StateKey)``; ``scope`` in the other tables is the state row's ``id``, so
that the key's text is stored once per scope, not with each applied idempotency key (the
window is most of the file: ``bench/state_scopes.py``). Versions come from ``revision``,
one counter for the file, so a key never gets a version twice, even after ``delete``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from layer.state.base import (
    DEFAULT_APPLIED_WINDOW,
    BaseStateStore,
    check_due_query,
    check_key,
    check_writes,
)
from layer.state.errors import StateConflict, StateError, StoreUnavailable
from layer.state.model import DueTimer, StateKey, StateWrite, StoredState, Timer

__all__ = ["SCHEMA_VERSION", "SqliteStateStore"]

SCHEMA_VERSION = 2
"""The layout of the tables this version writes; a file with another one is refused."""

_SYNCHRONOUS = ("full", "normal")
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', 2), ('revision', 0);
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, version INTEGER NOT NULL,
    data BLOB NOT NULL, applied_seq INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS applied (
    scope INTEGER NOT NULL, seq INTEGER NOT NULL, idempotency_key TEXT NOT NULL,
    PRIMARY KEY (scope, idempotency_key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS applied_by_seq ON applied (scope, seq);
CREATE TABLE IF NOT EXISTS timers (
    scope INTEGER NOT NULL, name TEXT NOT NULL, due REAL NOT NULL, event TEXT NOT NULL,
    PRIMARY KEY (scope, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS timers_by_due ON timers (due, scope, name);
"""


class SqliteStateStore(BaseStateStore):
    """A state store in one SQLite file (WAL), for one daemon (or a few on one host).

    Args:
        path: The database file; made with its tables on first use. ``":memory:"`` for a
            database that lives as long as the store's connection.
        applied_window: Idempotency keys kept per scope, the newest (default 1000).
        synchronous: ``"full"`` (default): each commit is on disk (fsync) before ``save``
            returns, so it survives a power cut; ``"normal"``: it survives the process being
            killed, but the last commits may be lost with the machine (faster).
        busy_timeout: Seconds to wait for another process's write lock on the file before
            raising ``StoreUnavailable``.

    Raises:
        StateError: A bad option (the file itself is opened on first use).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        applied_window: int = DEFAULT_APPLIED_WINDOW,
        synchronous: str = "full",
        busy_timeout: float = 5.0,
    ) -> None:
        super().__init__(applied_window=applied_window)
        if not isinstance(path, str | os.PathLike) or not str(path):
            raise StateError(f"the sqlite state store's path must be a file path, got {path!r}")
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        if not isinstance(synchronous, str) or synchronous.lower() not in _SYNCHRONOUS:
            raise StateError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        self.synchronous = synchronous.lower()
        try:
            self.busy_timeout = float(busy_timeout)
        except (TypeError, ValueError):
            self.busy_timeout = -1.0
        if not 0 <= self.busy_timeout < float("inf"):
            raise StateError(f"busy_timeout must be seconds (>= 0), got {busy_timeout!r}")
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None  # used in the executor's thread only

    def __repr__(self) -> str:
        return f"<SqliteStateStore {self.path!r}>"

    # -- the thread ------------------------------------------------------------------------

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="state-sqlite")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, job)
        except sqlite3.OperationalError as exc:  # locked, busy, cannot open, disk I/O
            raise StoreUnavailable(f"sqlite state store {self.path!r}: {exc}") from exc
        except sqlite3.Error as exc:  # not a database, damaged, constraint
            raise StateError(f"sqlite state store {self.path!r}: {exc}") from exc

    def _call(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._connection is None:
            self._connection = self._open()
        return job(self._connection)

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=True
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            # executescript() commits first, so the transaction is in the script.
            connection.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
        except BaseException:
            connection.close()
            raise
        row = connection.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            connection.close()
            raise sqlite3.DatabaseError(
                f"the file has state schema {row[0] if row else None}; this version reads "
                f"schema {SCHEMA_VERSION} only (written by another version of asgi-gateway?)"
            )
        return connection

    # -- the operations ----------------------------------------------------------------------

    async def load(self, key: StateKey) -> StoredState | None:
        """The scope's state, applied keys and timers, read in one transaction.

        Raises:
            StoreUnavailable: The file cannot be opened or read now.
            StateError: It is not a state database (or of another schema).
        """
        text, window = str(check_key(key)), self.applied_window

        def job(db: sqlite3.Connection) -> StoredState | None:
            with _transaction(db, "BEGIN"):
                row = db.execute(
                    "SELECT id, version, data, applied_seq FROM state WHERE key = ?", (text,)
                ).fetchone()
                if row is None:
                    return None
                applied = db.execute(
                    "SELECT idempotency_key FROM applied WHERE scope = ? AND seq > ? ORDER BY seq",
                    (row[0], row[3] - window),
                ).fetchall()
                timers = db.execute(
                    "SELECT name, due, event FROM timers WHERE scope = ?", (row[0],)
                ).fetchall()
            return StoredState(
                bytes(row[2]),
                row[1],
                tuple(a for (a,) in applied),
                {name: Timer.from_json(_timer_json(due, event)) for name, due, event in timers},
            )

        return await self._run(job)

    async def save_many(self, writes: Sequence[StateWrite]) -> list[int | StateConflict]:
        """Write several scopes in one transaction, each checked against its version.

        Returns:
            Per write, in order: its new version, or the ``StateConflict`` that refused it.

        Raises:
            StoreUnavailable: The file is locked past ``busy_timeout`` or cannot be written;
                the transaction is rolled back, nothing of it is stored.
            InvalidStateWrite: Not a list of ``StateWrite``, or a key twice.
        """
        checked, window = check_writes(writes), self.applied_window
        if not checked:
            return []

        def job(db: sqlite3.Connection) -> list[int | StateConflict]:
            with _transaction(db, "BEGIN IMMEDIATE"):
                row = db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
                revision: int = row[0]
                results: list[int | StateConflict] = []
                for write in checked:
                    outcome = _write(db, write, revision + 1, window)
                    if not isinstance(outcome, StateConflict):
                        revision = outcome
                    results.append(outcome)
                db.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
            return results

        return await self._run(job)

    async def due_timers(self, now: float, limit: int = 100) -> list[DueTimer]:
        """Timers due at ``now`` or before, by due time, then key and name; at most ``limit``.

        Raises:
            StoreUnavailable: The file cannot be read now.
        """
        now, limit = check_due_query(now, limit)

        def job(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return db.execute(
                "SELECT state.key, name, due, event FROM timers JOIN state ON state.id = scope "
                "WHERE due <= ? ORDER BY due, state.key, name LIMIT ?",
                (now, limit),
            ).fetchall()

        rows = await self._run(job)
        return [
            DueTimer(StateKey.parse(key), name, Timer.from_json(_timer_json(due, event)))
            for key, name, due, event in rows
        ]

    async def delete(self, key: StateKey) -> bool:
        """Remove the scope's state, applied keys and timers in one transaction."""
        text = str(check_key(key))

        def job(db: sqlite3.Connection) -> bool:
            with _transaction(db, "BEGIN IMMEDIATE"):
                row = db.execute("SELECT id FROM state WHERE key = ?", (text,)).fetchone()
                if row is None:
                    return False
                db.execute("DELETE FROM state WHERE id = ?", row)
                db.execute("DELETE FROM applied WHERE scope = ?", row)
                db.execute("DELETE FROM timers WHERE scope = ?", row)
            return True

        return await self._run(job)

    async def ping(self) -> None:
        """Open the file if needed and read from it.

        Raises:
            StoreUnavailable: It cannot be opened or read.
        """
        await self._run(lambda db: db.execute("SELECT value FROM meta LIMIT 1").fetchone())

    async def close(self) -> None:
        """Close the connection (checkpointing the WAL) and stop the thread."""
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def job() -> None:
            connection, self._connection = self._connection, None
            if connection is not None:
                connection.close()

        try:
            await asyncio.get_running_loop().run_in_executor(executor, job)
        finally:
            executor.shutdown(wait=False)


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, begin: str) -> Iterator[None]:
    """``BEGIN ...``; then ``COMMIT``, or ``ROLLBACK`` when the block raises."""
    db.execute(begin)
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _timer_json(due: float, event: str) -> str:
    return '{"due":' + repr(float(due)) + ',"event":' + event + "}"


def _write(
    db: sqlite3.Connection, write: StateWrite, version: int, window: int
) -> int | StateConflict:
    """One write inside the transaction: check the version, then store everything."""
    text = str(write.key)
    row = db.execute("SELECT id, version, applied_seq FROM state WHERE key = ?", (text,)).fetchone()
    actual = row[1] if row is not None else None
    if actual != write.expect_version:
        return StateConflict(write.key, write.expect_version, actual)
    if row is None:  # a new scope: its row first, for the id the other tables use
        scope = db.execute(
            "INSERT INTO state (key, version, data) VALUES (?, ?, ?)", (text, version, write.data)
        ).lastrowid
        seq = 0
    else:
        scope, seq = row[0], row[2]
    added = 0
    for idempotency_key in write.applied_keys:
        inserted = db.execute(
            "INSERT OR IGNORE INTO applied (scope, seq, idempotency_key) VALUES (?, ?, ?)",
            (scope, seq + added + 1, idempotency_key),
        ).rowcount
        added += inserted
    if added:
        seq += added
        db.execute("DELETE FROM applied WHERE scope = ? AND seq <= ?", (scope, seq - window))
    if row is not None or added:
        db.execute(
            "UPDATE state SET version = ?, data = ?, applied_seq = ? WHERE id = ?",
            (version, write.data, seq, scope),
        )
    if write.timers is not None:
        db.execute("DELETE FROM timers WHERE scope = ?", (scope,))
        db.executemany(
            "INSERT INTO timers (scope, name, due, event) VALUES (?, ?, ?, ?)",
            [(scope, name, t.due, t.event_json()) for name, t in write.timers.items()],
        )
    return version
