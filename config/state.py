"""The ``state:`` section: the store of durable scopes' state (``docs/state.md``); absent, the
daemon has no store, and a consumer with a ``state_model`` refuses to start."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from config.redaction import RedactedReprMixin

__all__ = ["StateConfig"]


class StateConfig(RedactedReprMixin):
    """The state store (``layer.state.build_state_store``).

    Attributes:
        backend: ``"sqlite"`` (one file, for one daemon), ``"redis"`` (several daemons),
            ``"memory"`` (tests: nothing outlives the process), an installed store's name
            (entry points ``asgi_gateway.state_stores``) or an import path
            ``"package.module:MyStore"``.
        applied_window: Idempotency keys kept per scope (the newest), 1 to 1,000,000.
        timer_interval: Seconds between the daemon's looks for due timers (``set_timer``):
            a timer fires up to this late. 0.01 to 60.

    Every other key is an option of the store, checked when the store is built: ``path``
    (sqlite: a file, relative to the working directory), ``synchronous``, ``busy_timeout``
    (seconds); ``hosts``, ``prefix``, ``timeout`` (seconds) for redis.
    """

    model_config = ConfigDict(extra="allow")

    backend: str = Field(default="sqlite", min_length=1)
    applied_window: int = Field(default=1000, ge=1, le=1_000_000)
    timer_interval: float = Field(default=1.0, ge=0.01, le=60)

    @property
    def options(self) -> dict[str, Any]:
        """The options of ``build_state_store``: ``backend``, ``applied_window`` and the rest."""
        return {
            "backend": self.backend,
            "applied_window": self.applied_window,
            **(self.model_extra or {}),
        }
