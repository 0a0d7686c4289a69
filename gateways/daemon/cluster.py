"""One live instance per scope across daemons: ``Cluster``, the daemon's ``Ownership``
(``gateways.ownership``; ``docs/deployment.md``, *One live instance per scope*).

A daemon with a ``cluster:`` section is a member of the cluster while its membership in
Redis lives (``gateways.daemon.membership``). Before a gateway opens a scope, the cluster
claims it: it opens here when no member owns it (or this daemon does), else the event is
**forwarded** over the channel layer to the owner's channel, ``asgi-gateway.cluster.<id>``.
The owner delivers it to its instance, in the order it came, and reports back once the
instance handled it; only then does the gateway that took it from its transport acknowledge
it (``Gateway.remote_handled``: an MQTT PUBACK), so at least once holds across the hop. A
forward with no report within ``forward_timeout`` seconds, or whose owner lost its
membership, is delivered again (claimed anew: the scope then starts here or elsewhere, from
the state store).

A daemon that finds its membership expired (it was paused or cut off past its lease) ends
every instance it runs, since others may own those scopes now, and joins again. Whatever
such a stale instance still tries to save is refused by the store (``layer.state
.FencingStore``: the new owner's first load raised the scope's version). A daemon that stops
gives its scopes back as each instance ends, then leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.exceptions
from prometheus_client import Counter

from config import Config
from gateways.base import Gateway, GatewayError
from gateways.daemon.membership import Claim, Membership
from gateways.ownership import ForwardedEvent, OwnedGateway
from layer import ChannelFull, ChannelLayer
from layer.retrying import retry_forever
from layer.types import Message, Scope

__all__ = ["Cluster", "build_cluster", "cluster_channel"]

logger = logging.getLogger(__name__)

CLAIMS = Counter(
    "asgi_gateway_cluster_claims_total", "Scopes this daemon claimed, by gateway.", ["gateway"]
)
TAKEOVERS = Counter(
    "asgi_gateway_cluster_takeovers_total",
    "Scopes claimed from a daemon whose membership had run out (failovers), by gateway.",
    ["gateway"],
)
FORWARDS = Counter(
    "asgi_gateway_cluster_forwards_total",
    "Events forwarded to the daemon that owns their scope, by gateway.",
    ["gateway"],
)
REDELIVERIES = Counter(
    "asgi_gateway_cluster_redeliveries_total",
    "Forwarded events delivered again (no report in time, or their owner left), by gateway.",
    ["gateway"],
)
MEMBERSHIP_LOST = Counter(
    "asgi_gateway_cluster_membership_lost_total",
    "Times this daemon found its membership expired and ended its instances.",
)

#: Scope keys that cannot cross the layer (objects of this process) or that ``new_scope`` sets.
_LOCAL_SCOPE_KEYS = frozenset({"type", "asgi", "gateway", "channel_layer", "state_store", "route"})


def cluster_channel(daemon: str) -> str:
    """The channel name a daemon of the cluster receives forwarded events and reports on."""
    return f"asgi-gateway.cluster.{daemon}"


@dataclass(slots=True)
class _Forward:
    gateway: OwnedGateway
    key: str
    event: Message
    scope: Scope | None
    owner: str
    sent: float


@dataclass(slots=True)
class _Backlog:
    """Releases waiting for the next flush."""

    scopes: set[tuple[str, str]] = field(default_factory=set)
    flushing: asyncio.Task[None] | None = None


class Cluster:
    """This daemon's membership, its claims and its forwards (see the module).

    Args:
        layer: The channel layer the daemons share (forwards and reports go over it).
        redis_url: The Redis server of the membership and owners.
        lease: Seconds of membership without renewal.
        forward_timeout: Seconds a forward waits for its report before it is delivered again.
        placement: ``"local"`` or ``"hash"`` (``config.cluster.ClusterConfig``).
        prefix: Start of the cluster's Redis keys.

    Attributes:
        daemon: This daemon's id: host, process id and a random part.
        gateways: The daemon's gateways by name, for forwarded events (set by the daemon).
    """

    def __init__(
        self,
        layer: ChannelLayer,
        redis_url: str,
        *,
        lease: float = 10.0,
        forward_timeout: float = 30.0,
        placement: Literal["local", "hash"] = "local",
        prefix: str = "gwcluster",
    ) -> None:
        host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
        self.daemon = f"{host[:30]}-{os.getpid()}-{secrets.token_hex(4)}"
        self.layer = layer
        self.lease = lease
        self.forward_timeout = forward_timeout
        self.placement = placement
        self.channel = cluster_channel(self.daemon)
        self.membership = Membership(redis_url, self.daemon, lease=lease, prefix=prefix)
        self.gateways: Mapping[str, Gateway] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, _Forward] = {}
        self._owned: set[tuple[str, str]] = set()
        self._releases = _Backlog()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._stopped = False

    def __repr__(self) -> str:
        return f"<Cluster {self.daemon} owned={len(self._owned)} forwarding={len(self._pending)}>"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Join, then start renewing and receiving forwards.

        Raises:
            GatewayError: Redis cannot be reached.
        """
        try:
            await self.membership.join()
        except redis.exceptions.RedisError as exc:
            raise GatewayError(f"cluster: cannot join, Redis is unavailable: {exc}") from exc
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._renew(), name="cluster-renew"),
            loop.create_task(self._receive(), name="cluster-receive"),
        ]
        logger.info("Cluster: joined as %s (lease %.1f s)", self.daemon, self.lease)

    async def stop(self) -> None:
        """Give back every scope still owned, leave, close (after the gateways stopped)."""
        self._stopped = True
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in [*self._tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        try:
            await self.membership.release(sorted(self._owned | self._releases.scopes))
            await self.membership.leave()
        except redis.exceptions.RedisError as exc:
            logger.warning("Cluster: could not hand the scopes back at stop (%s)", exc)
        finally:
            await self.membership.close()
        logger.info("Cluster: %s left", self.daemon)

    # -- Ownership ---------------------------------------------------------------------------

    async def admit(
        self, gateway: OwnedGateway, key: str, event: Message, scope: Scope | None
    ) -> bool:
        """``Ownership.admit``: claim the scope, or forward ``event`` to its owner."""
        name = gateway.name
        while (name, key) not in self._owned:
            claim = await self._claim(name, key)
            if claim.owner == self.daemon:
                self._owned.add((name, key))
                break
            if await self._forward(_Forward(gateway, key, event, scope, claim.owner, 0.0)):
                return False
            # Its owner stopped taking events and is no member any more: claim it again.
        return True

    async def _claim(self, name: str, key: str) -> Claim:
        target = self.daemon if self.placement == "local" else await self._pick(name, key)
        claim: Claim = await self._retrying(lambda: self.membership.claim(name, key, target))
        if claim.token:
            CLAIMS.labels(name).inc()
            if claim.taken_from:
                TAKEOVERS.labels(name).inc()
                logger.info(
                    "Cluster: took scope %r of gateway %r over from %s, which is no member "
                    "(token %d)",
                    key,
                    name,
                    claim.taken_from,
                    claim.token,
                    extra={"gateway": name, "scope": key},
                )
        return claim

    def released(self, gateway: str, key: str) -> None:
        """``Ownership.released``: give the scope back (batched, in the background)."""
        if (gateway, key) not in self._owned:
            return
        self._owned.discard((gateway, key))
        self._releases.scopes.add((gateway, key))
        if self._stopped:
            return  # stop() gives back what is left, in one call
        if self._releases.flushing is None or self._releases.flushing.done():
            self._releases.flushing = self._spawn(self._flush_releases())

    # -- forwarding --------------------------------------------------------------------------

    async def _forward(self, forward: _Forward) -> bool:
        """Send the event to its scope's owner; False when the owner's channel is full and
        the owner is no member any more (dead or paused past its lease): claim it again."""
        number = next(self._ids)
        scope = forward.scope or {}
        message = {
            "type": "cluster.forward",
            "gateway": forward.gateway.name,
            "scope_key": forward.key,
            "event": dict(forward.event),
            "scope": {k: v for k, v in scope.items() if k not in _LOCAL_SCOPE_KEYS},
            "origin": self.channel,
            "id": number,
        }
        forward.sent = asyncio.get_running_loop().time()
        self._pending[number] = forward
        FORWARDS.labels(forward.gateway.name).inc()
        delay = 0.01
        while True:
            try:
                await self.layer.send(cluster_channel(forward.owner), message)
                return True
            except ChannelFull:
                alive = await self._retrying(lambda: self.membership.alive([forward.owner]))
                if forward.owner not in alive:
                    self._pending.pop(number, None)
                    return False
                await asyncio.sleep(delay)  # the owner is behind: wait for room
                delay = min(delay * 2, 1.0)

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the layer is away: retry
                logger.warning("Cluster: receiving on %s failed (%s); retrying", self.channel, exc)
                await asyncio.sleep(min(self.lease / 3, 1.0))
                continue
            kind = message.get("type")
            if kind == "cluster.handled":
                self._handled(message.get("id"))
            elif kind == "cluster.forward":
                await self._deliver(message)
            else:
                logger.warning("Cluster: skipped a message of type %r on %s", kind, self.channel)

    async def _deliver(self, message: Message) -> None:
        """A forwarded event, for a scope this daemon owns: to its instance, in order."""
        name, key = message.get("gateway"), message.get("scope_key")
        gateway = self.gateways.get(name) if isinstance(name, str) else None
        event = message.get("event")
        if gateway is None or not isinstance(key, str) or not isinstance(event, dict):
            logger.warning("Cluster: skipped a forward for gateway %r: not one of ours", name)
            return
        origin, number = message.get("origin"), message.get("id")

        def report() -> None:
            if isinstance(origin, str):
                self._spawn(self._report(origin, number))

        fields = message.get("scope")
        scope = gateway.new_scope(**fields) if isinstance(fields, dict) and fields else None
        if scope is None and key not in gateway.instances:
            scope = gateway.scope_for_key(key)
        try:
            await gateway.dispatch(key, ForwardedEvent(event, report), scope)
        except Exception:
            logger.exception(
                "Cluster: a forwarded event for scope %r of gateway %r could not be delivered",
                key,
                name,
                extra={"gateway": name, "scope": key},
            )

    async def _report(self, origin: str, number: Any) -> None:
        try:
            await self.layer.send(origin, {"type": "cluster.handled", "id": number})
        except Exception as exc:  # the sender delivers it again after its timeout
            logger.warning("Cluster: could not report a handled forward to %s (%s)", origin, exc)

    def _handled(self, number: Any) -> None:
        forward = self._pending.pop(number, None) if isinstance(number, int) else None
        if forward is None:
            return  # delivered again meanwhile, or a report for another process
        if isinstance(forward.event, ForwardedEvent):
            forward.event.settle()  # forwarded on from here: report to where it came from
        else:
            forward.gateway.remote_handled(forward.event)

    # -- renewal, redelivery, releases -------------------------------------------------------

    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                if not await self.membership.renew():
                    await self._lost()
                await self._redeliver(loop.time())
            except redis.exceptions.RedisError as exc:
                logger.warning("Cluster: renewing the membership failed (%s); retrying", exc)

    async def _lost(self) -> None:
        MEMBERSHIP_LOST.inc()
        ended = 0
        for gateway in self.gateways.values():
            for instance in list(gateway.instances.values()):
                gateway.end(instance, "evicted")
                ended += 1
        logger.warning(
            "Cluster: the membership of %s had expired (paused or cut off past its lease of "
            "%.1f s); other daemons may own its scopes now: %d instances ended; joining again",
            self.daemon,
            self.lease,
            ended,
        )
        self._owned.clear()
        await self.membership.join()

    async def _redeliver(self, now: float) -> None:
        if not self._pending:
            return
        alive = await self.membership.alive(f.owner for f in self._pending.values())
        again: dict[tuple[str, str, bool], int] = {}
        for number, forward in list(self._pending.items()):
            late = now - forward.sent > self.forward_timeout
            if forward.owner in alive and not late:
                continue
            del self._pending[number]
            REDELIVERIES.labels(forward.gateway.name).inc()
            where = (forward.owner, forward.gateway.name, late)
            again[where] = again.get(where, 0) + 1
            self._spawn(forward.gateway.dispatch(forward.key, forward.event, forward.scope))
        for (owner, gateway, late), count in again.items():  # one line per owner, not per event
            logger.warning(
                "Cluster: %d events of gateway %r forwarded to %s %s; delivering them again",
                count,
                gateway,
                owner,
                "were not reported handled in time" if late else "lost their owner",
                extra={"gateway": gateway},
            )

    async def _flush_releases(self) -> None:
        await asyncio.sleep(0)  # the ends of one turn go together
        scopes, self._releases.scopes = sorted(self._releases.scopes), set()
        try:
            await self.membership.release(scopes)
        except redis.exceptions.RedisError as exc:
            # They stay named after this daemon: others take them over once it leaves.
            logger.warning("Cluster: giving %d scopes back failed (%s)", len(scopes), exc)

    async def _pick(self, gateway: str, key: str) -> str:
        """``placement: hash``: the live member that rendezvous hashing picks for the key."""
        members: list[str] = await self._retrying(self.membership.members) or [self.daemon]

        def weight(member: str) -> bytes:
            text = f"{member}\n{gateway}\n{key}".encode()
            return hashlib.blake2b(text, digest_size=8).digest()

        return max(members, key=weight)

    async def _retrying(self, call: Any) -> Any:
        """``await call()``, again after a Redis error, with backoff, for ever (logged): the
        event waits, as it waits for a state store that is away."""
        return await retry_forever(call, retry_on=redis.exceptions.RedisError, warn=_warn)

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def _warn(exc: BaseException | None, delay: float) -> None:
    logger.warning("Cluster: Redis is unavailable (%s); retrying in %.1f s", exc, delay)


def build_cluster(config: Config, layer: ChannelLayer) -> Cluster | None:
    """The cluster the ``cluster:`` section asks for, or ``None`` without one.

    Raises:
        ConfigError: The layer is not shared between processes (``memory``), or no Redis URL
            is given nor found in the Redis layer's ``hosts``.
    """
    section = config.cluster
    if section is None:
        return None
    if config.layer.type == "memory":
        raise config.error_at(
            ("cluster",),
            "a cluster forwards events between daemons over the channel layer: give them a "
            "shared one (layer: {type: redis})",
        )
    url = section.redis
    if url is None:
        hosts = config.layer.options.get("hosts") or ["redis://localhost:6379"]
        first = hosts[0] if isinstance(hosts, list | tuple) and hosts else None
        if isinstance(first, str):
            url = first
        elif isinstance(first, list | tuple) and len(first) == 2:
            url = f"redis://{first[0]}:{first[1]}"
        else:
            raise config.error_at(
                ("cluster", "redis"), "give the Redis server of the cluster (a redis:// URL)"
            )
    return Cluster(
        layer,
        url,
        lease=section.lease,
        forward_timeout=section.forward_timeout,
        placement=section.placement,
        prefix=section.prefix,
    )
