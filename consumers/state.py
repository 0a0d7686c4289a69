"""Durable scope state: a consumer's ``state_model``, loaded when its scope starts and saved
after every event it handled (``docs/state.md``).

A consumer that sets ``state_model`` (a pydantic model whose fields all have defaults) gets
``self.state``, an instance of it, loaded from the state store before its first event is
dispatched: the store given as ``as_asgi(state_store=...)``, the class attribute
``state_store``, or the gateway's ``scope["state_store"]`` (the daemon puts the store of the
YAML ``state:`` section there). After each event or channel-layer message the consumer
handled, the state is written back when it changed, before the consumer asks for its next
event, which is when the gateway acknowledges an MQTT QoS 1/2 message
(``docs/mqtt.md``): a crash can repeat an event, never lose its effect.

An event that carries ``"idempotency_key"`` (a str; the gateways set it from the platform's
event ids or where the YAML says) is applied once: the key is recorded in the same write as
the state, and an event whose key the scope already applied is skipped (and counted in
``asgi_gateway_events_deduplicated_total``). The store keeps the newest
``applied_window`` keys per scope.

Stored form: the JSON object ``{"version": <state_version>, "state": <model_dump(mode="json")>}``
as UTF-8 bytes, under the key ``StateKey(state_name, gateway, scope_key)``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from layer.retrying import retry_forever
from layer.state import (
    StateConflict,
    StateError,
    StateKey,
    StateStore,
    StoreUnavailable,
    Timer,
)
from layer.types import Message, Scope

__all__ = ["CONFLICTS", "DEDUPLICATED", "DurableState", "StateModelError", "state_key"]

logger = logging.getLogger(__name__)

CONFLICTS = Counter(
    "asgi_gateway_state_conflicts_total",
    "Saves refused because the scope's state was written elsewhere since it was loaded (in a "
    "cluster: a stale instance fenced off by the scope's new owner).",
    ["gateway"],
)
DEDUPLICATED = Counter(
    "asgi_gateway_events_deduplicated_total",
    "Events skipped because their scope had already applied their idempotency key.",
    ["gateway"],
)


class StateModelError(StateError):
    """The stored state does not fit the consumer's ``state_model`` (and no
    ``migrate_state`` made it fit), or the model cannot be built with no arguments."""


def state_key(name: str, scope: Scope) -> StateKey:
    """The key of a consumer's state in ``scope``: ``(name, scope["gateway"], scope_key)``.

    Args:
        name: The consumer's ``state_name`` (its import path unless set).
        scope: The scope; ``scope_key`` is ``scope["scope_key"]``.

    Raises:
        StateError: The scope has no ``gateway`` or no ``scope_key`` (the consumer does not
            run behind a gateway of ours).
    """
    gateway, key = scope.get("gateway"), scope.get("scope_key")
    if not isinstance(gateway, str) or not isinstance(key, str):
        raise StateError(
            f"a durable consumer ({name}) needs scope['gateway'] and scope['scope_key'], "
            f"got {gateway!r} and {key!r}"
        )
    return StateKey(name, gateway, key)


def _warn_unavailable(key: StateKey, exc: BaseException | None, delay: float) -> None:
    logger.warning(
        "State store unavailable for %s (%s); retrying in %.1f s, the event waits",
        key,
        exc,
        delay,
        extra={"gateway": key.gateway, "scope": key.scope_key},
    )


class DurableState:
    """One consumer instance's durable state: the store, the key, the version it loaded,
    the bytes last saved and the idempotency keys applied.

    Made by ``DurableState.open``; the consumer keeps it for its scope's life.
    """

    __slots__ = (
        "applied",
        "key",
        "model",
        "saved",
        "store",
        "timers",
        "timers_changed",
        "version",
        "version_tag",
    )

    def __init__(
        self,
        store: StateStore,
        key: StateKey,
        model: type[BaseModel],
        version_tag: int,
        applied: deque[str],
    ) -> None:
        self.store = store
        self.key = key
        self.model = model
        self.version_tag = version_tag
        self.version: int | None = None
        self.saved: bytes | None = None
        self.applied = applied
        #: The scope's timers by name, as they will be after the next save.
        self.timers: dict[str, Timer] = {}
        #: Whether ``timers`` changed since the last save.
        self.timers_changed = False

    @classmethod
    async def open(
        cls,
        store: StateStore,
        key: StateKey,
        model: type[BaseModel],
        *,
        version_tag: int = 1,
        migrate: Callable[[dict[str, Any], int], Mapping[str, Any]] | None = None,
    ) -> tuple[DurableState, BaseModel]:
        """Load ``key``'s state from ``store``, waiting (with backoff) while it is away.

        Args:
            store: The state store.
            key: The state's key.
            model: The consumer's ``state_model``.
            version_tag: The consumer's ``state_version``, stored with the state.
            migrate: ``migrate_state(data, version)`` of the consumer, called when the stored
                version differs from ``version_tag``; returns the data in today's shape.

        Returns:
            The ``DurableState`` and the state: the stored one, or ``model()`` for a scope
            with none yet.

        Raises:
            StateModelError: The stored state does not validate against ``model`` (after
                ``migrate``), or ``model()`` needs arguments.
        """
        stored = await _retrying(key, lambda: store.load(key))
        durable = cls(store, key, model, version_tag, deque(maxlen=store.applied_window))
        if stored is not None:
            durable.version = stored.version
            durable.applied.extend(stored.applied)
            durable.timers.update(stored.timers)
        if stored is None or not stored.data:  # none, or the empty record of a fenced scope
            try:
                return durable, model()
            except ValidationError as exc:
                raise StateModelError(
                    f"state_model {model.__qualname__} must be valid with no arguments (give "
                    f"every field a default) to start {key}: {exc}"
                ) from exc
        durable.saved = stored.data
        return durable, durable.decode(stored.data, migrate)

    def decode(
        self, data: bytes, migrate: Callable[[dict[str, Any], int], Mapping[str, Any]] | None
    ) -> BaseModel:
        """The model instance stored as ``data`` (see the module docstring)."""
        try:
            document = json.loads(data)
            version, state = document["version"], document["state"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StateModelError(f"the stored state of {self.key} is not ours: {exc}") from exc
        if version != self.version_tag:
            if migrate is None:
                raise StateModelError(
                    f"the stored state of {self.key} is version {version}, the consumer's "
                    f"state_version is {self.version_tag}: define migrate_state() "
                    "(docs/state.md, Migration)"
                )
            state = dict(migrate(dict(state), version))
        try:
            return self.model.model_validate(state)
        except ValidationError as exc:
            raise StateModelError(
                f"the stored state of {self.key} does not fit {self.model.__qualname__} "
                f"(version {version}); change the model compatibly or migrate it "
                f"(docs/state.md, Migration): {exc}"
            ) from exc

    def encode(self, state: BaseModel) -> bytes:
        """``state`` in its stored form."""
        document = {"version": self.version_tag, "state": state.model_dump(mode="json")}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()

    def already_applied(self, event: Message) -> bool:
        """Whether ``event`` has an idempotency key this scope applied (then it is counted)."""
        idempotency_key = event.get("idempotency_key")
        if isinstance(idempotency_key, str) and idempotency_key in self.applied:
            DEDUPLICATED.labels(self.key.gateway).inc()
            logger.debug(
                "Scope %r of gateway %r applied %r already; skipped",
                self.key.scope_key,
                self.key.gateway,
                idempotency_key,
                extra={"gateway": self.key.gateway, "scope": self.key.scope_key},
            )
            return True
        return False

    def set_timer(
        self, name: str, event: Mapping[str, Any], *, delay: float | None, at: float | None
    ) -> Timer:
        """``AsyncConsumer.set_timer``: set or replace the timer ``name`` (saved with the
        state, after the handler).

        Raises:
            StateError: ``name`` is not a non-empty str, ``event`` has no str ``type`` or
                uses the keys ``timer`` or ``due``, or not exactly one of ``delay`` and
                ``at`` is given.
            InvalidStateWrite: ``event`` cannot be JSON, or the time is not finite.
        """
        if not isinstance(name, str) or not name:
            raise StateError(f"a timer's name must be a non-empty str, got {name!r}")
        if not isinstance(event.get("type"), str):
            raise StateError(f"timer {name!r}: its event needs a str 'type', got {event!r:.200}")
        if "timer" in event or "due" in event:
            raise StateError(f"timer {name!r}: 'timer' and 'due' are set on its event when due")
        if delay is not None and at is None:
            due = time.time() + delay
        elif at is not None and delay is None:
            due = at
        else:
            raise StateError(f"timer {name!r}: give exactly one of delay= and at=")
        timer = self.timers[name] = Timer(due, event)
        self.timers_changed = True
        return timer

    def cancel_timer(self, name: str) -> bool:
        """``AsyncConsumer.cancel_timer``: whether there was a timer ``name``."""
        if self.timers.pop(name, None) is None:
            return False
        self.timers_changed = True
        return True

    def take_timer(self, event: Message) -> bool | None:
        """For a timer's event (str ``timer``, number ``due``): whether it is the timer as
        set now, which then leaves ``timers`` (it fired; the save removes it from the store).
        ``False``: it was replaced, cancelled or fired since (a late copy): skip the event.
        ``None``: not a timer's event."""
        name, due = event.get("timer"), event.get("due")
        if not isinstance(name, str) or not isinstance(due, (int, float)):
            return None
        timer = self.timers.get(name)
        if timer is None or timer.due != due:
            logger.debug(
                "Scope %r of gateway %r: timer %r due at %s is not set now; its event skipped",
                self.key.scope_key,
                self.key.gateway,
                name,
                due,
                extra={"gateway": self.key.gateway, "scope": self.key.scope_key},
            )
            return False
        del self.timers[name]
        self.timers_changed = True
        return True

    async def save(self, state: BaseModel, event: Message) -> None:
        """Write ``state`` and ``event``'s idempotency key, if either is new, waiting (with
        backoff) while the store is away.

        Raises:
            StateConflict: Another writer wrote this key since it was loaded (in a cluster:
                this instance is stale and must end).
        """
        idempotency_key = event.get("idempotency_key")
        keys = (idempotency_key,) if isinstance(idempotency_key, str) else ()
        data = self.encode(state)
        timers = dict(self.timers) if self.timers_changed else None
        if data == self.saved and not keys and timers is None:
            return
        version = self.version
        failed = False

        async def write() -> Any:
            nonlocal failed
            try:
                return await self.store.save(
                    self.key, data, expect_version=version, applied_keys=keys, timers=timers
                )
            except StoreUnavailable:
                failed = True
                raise

        try:
            self.version = await _retrying(self.key, write)
        except StateConflict:
            # After a failed attempt, the outcome of that attempt is unknown: it may have been
            # stored with its reply lost (StoreUnavailable's docstring); then this is no
            # conflict but the same write, found in the store.
            if failed and await self._found(data, keys, timers):
                return
            CONFLICTS.labels(self.key.gateway).inc()
            logger.error(
                "State of scope %r on gateway %r was written elsewhere since it was loaded "
                "(version %s); this instance ends",
                self.key.scope_key,
                self.key.gateway,
                version,
                extra={"gateway": self.key.gateway, "scope": self.key.scope_key},
            )
            raise
        self._saved(data, keys, timers)

    def _saved(self, data: bytes, keys: tuple[str, ...], timers: dict[str, Timer] | None) -> None:
        self.saved = data
        self.applied.extend(keys)
        if timers is not None and timers == self.timers:
            self.timers_changed = False

    async def _found(
        self, data: bytes, keys: tuple[str, ...], timers: dict[str, Timer] | None
    ) -> bool:
        """Whether the store holds this very write (``data``, ``keys``, ``timers``); if so,
        its version is taken as this save's."""
        stored = await _retrying(self.key, lambda: self.store.load(self.key))
        if (
            stored is None
            or stored.data != data
            or not all(stored.has_applied(k) for k in keys)
            or (timers is not None and dict(stored.timers) != timers)
        ):
            return False
        logger.info(
            "State of scope %r on gateway %r: a save whose reply was lost had been stored "
            "(version %d)",
            self.key.scope_key,
            self.key.gateway,
            stored.version,
            extra={"gateway": self.key.gateway, "scope": self.key.scope_key},
        )
        self.version = stored.version
        self._saved(data, keys, timers)
        return True


async def _retrying(key: StateKey, call: Callable[[], Any]) -> Any:
    """``await call()``, again after ``StoreUnavailable`` with backoff, for ever (logged)."""

    def warn(exc: BaseException | None, delay: float) -> None:
        _warn_unavailable(key, exc, delay)

    return await retry_forever(call, retry_on=StoreUnavailable, warn=warn)
