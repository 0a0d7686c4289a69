"""Option models that several gateways share (YAML keys inside a gateway entry)."""

from __future__ import annotations

from pydantic import Field, model_validator

from config import OptionsModel

__all__ = ["Reconnect"]


class Reconnect(OptionsModel):
    """Backoff between connection attempts: exponential from ``initial``, with jitter, capped
    at ``maximum``. A connection that stayed up at least ``maximum`` seconds starts the
    backoff again from ``initial``.

    Attributes:
        initial: Seconds before the first retry.
        maximum: Most seconds between two attempts.
    """

    initial: float = Field(default=1.0, gt=0)
    maximum: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Reconnect:
        if self.maximum < self.initial:
            raise ValueError(
                f"reconnect.maximum ({self.maximum}) is below reconnect.initial ({self.initial})"
            )
        return self
