"""``FencingStore``: a store whose ``load`` fences off every instance that loaded before.

In a cluster (``docs/deployment.md``, *One live instance per scope*), a daemon that takes a
scope over from one that seemed dead (paused past its lease, cut off) must make sure the old
instance, should it wake, can change nothing: Kleppmann's fencing token, checked by the
storage itself. The scope's version is that token. ``load`` here writes the scope back as it
found it, raising its version, so every save of an instance that loaded before (and expects
the old version) is refused with ``StateConflict``, however late it comes. A scope with no
state gets an empty record (``data`` ``b""``), which ``consumers.state.DurableState`` reads
as none: fencing holds from the first load, not only from the first save.

It costs one write per scope start, which is why only a daemon with a ``cluster:`` section
wraps its store in it.
"""

from __future__ import annotations

from layer.state.errors import StateConflict
from layer.state.model import StateKey, StoredState
from layer.state.wrapper import StoreWrapper

__all__ = ["FencingStore"]

#: Loads retried when another writer got in between the load and its fencing write.
ATTEMPTS = 10


class FencingStore(StoreWrapper):
    """A ``StateStore`` whose ``load`` raises the scope's version (see the module); every other
    method goes straight to the store it wraps.

    Args:
        store: The store (the daemon's, behind ``GroupCommit``).
    """

    async def load(self, key: StateKey) -> StoredState | None:
        """The scope's state, written back under a new version before it is returned (an
        empty record, ``data`` ``b""``, for a scope that had none).

        Raises:
            StateConflict: Other writers got in between ``ATTEMPTS`` times in a row.
            StoreUnavailable: The store cannot be reached.
        """
        for _ in range(ATTEMPTS):
            stored = await self.store.load(key)
            try:
                if stored is None:
                    version = await self.store.save(key, b"", expect_version=None)
                    return StoredState(b"", version)
                version = await self.store.save(key, stored.data, expect_version=stored.version)
            except StateConflict:
                continue  # written in between: load it again
            return StoredState(stored.data, version, stored.applied, stored.timers)
        raise StateConflict(key, None, None)
