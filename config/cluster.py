"""The ``cluster:`` section: scopes owned by one daemon at a time across the daemons that
share a Redis (``gateways.daemon.cluster``, ``docs/deployment.md``, *One live instance per
scope*); absent, each daemon opens its scopes on its own."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from config.redaction import RedactedReprMixin

__all__ = ["ClusterConfig"]


class ClusterConfig(RedactedReprMixin):
    """Scope ownership over Redis.

    Attributes:
        redis: The Redis server that holds the daemons' membership and the scopes' owners, a
            ``redis://`` URL; ``None``: the first of the Redis channel layer's ``hosts``.
        lease: Seconds a daemon stays a member without renewing (it renews every third of
            that): a daemon that dies or is cut off loses its scopes after this long.
            0.5 to 300.
        forward_timeout: Seconds an event forwarded to a scope's owner may wait for the
            owner's report that it was handled before it is delivered again (at least once;
            an owner that lost its membership is given up sooner, at the next renewal).
        placement: Where a scope that no daemon owns starts: ``"local"``, on the daemon its
            first event reached; ``"hash"``, on the live daemon that rendezvous hashing of
            its gateway and key picks.
        prefix: Start of every Redis key of the cluster.
    """

    model_config = ConfigDict(extra="forbid")

    redis: str | None = Field(default=None, min_length=1)
    lease: float = Field(default=10.0, ge=0.5, le=300)
    forward_timeout: float = Field(default=30.0, ge=0.5, le=3600)
    placement: Literal["local", "hash"] = "local"
    prefix: str = Field(default="gwcluster", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
