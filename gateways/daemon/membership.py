"""The cluster's records in Redis: which daemons are members, and which daemon owns each scope
(``gateways.daemon.cluster``; ``docs/deployment.md``, *One live instance per scope*).

Redis is the coordination engine; there is no consensus of our own. Keys, with ``P`` the
``cluster.prefix``:

- ``P:member:<daemon>``: ``"1"`` with a time to live of ``lease`` seconds, renewed every
  third of that. A daemon whose key expired (it died, was paused, or was cut off from Redis)
  is no member: every scope it owned may be taken over.
- ``P:members``: a sorted set of the members by the time (ms) their lease runs out, for
  ``placement: hash``.
- ``P:owner:<gateway>\\n<scope key>``: ``"<daemon> <token>"``, the scope's owner and the
  fencing token it claimed it with (``P:fence``, one counter: every claim gets a greater
  one). The owner deletes it when its instance ends; a claim takes it over when its daemon is
  no member. Claims and releases are Lua scripts, so two daemons claiming one scope get one
  owner.

The token orders the claims of a scope (logged and counted); what stops a stale owner from
changing a scope is its state's version, raised by the new owner's first load
(``layer.state.FencingStore``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import redis.asyncio as aioredis

__all__ = ["Claim", "Membership"]

_CLAIM = """
-- KEYS: owner, fence. ARGV: me, member prefix, the daemon to own it (me, or a hash pick).
-- Returns {owner, token (0: not claimed now), the owner taken over from ('' if none)}.
local current = redis.call('GET', KEYS[1])
local previous = ''
if current then
  local owner = string.match(current, '^(%S+) ')
  if owner == ARGV[1] or (owner and redis.call('EXISTS', ARGV[2] .. owner) == 1) then
    return {owner, 0, ''}
  end
  previous = owner or ''
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[3] .. ' ' .. token)
return {ARGV[3], token, previous}
"""

_RELEASE = """
-- KEYS: owner keys. ARGV: me. Deletes those that still name me; returns how many.
local released = 0
for _, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current and string.sub(current, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
"""


class Claim(NamedTuple):
    """What a claim found: the ``owner`` daemon, the ``token`` it got now (0 when the scope
    was owned already) and the daemon it was ``taken_from`` (``""``: none)."""

    owner: str
    token: int
    taken_from: str


class Membership:
    """One daemon's records in Redis (see the module).

    Args:
        url: The Redis server, a ``redis://`` URL.
        daemon: This daemon's id (unique per process start).
        lease: Seconds of membership without renewal.
        prefix: Start of every key.
    """

    def __init__(self, url: str, daemon: str, *, lease: float, prefix: str) -> None:
        self.daemon = daemon
        self.lease_ms = max(1, int(lease * 1000))
        self.prefix = prefix
        self.member_prefix = f"{prefix}:member:"
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=max(lease / 3, 0.5), socket_connect_timeout=max(lease / 3, 0.5)
        )
        self._claim = self._redis.register_script(_CLAIM)
        self._release = self._redis.register_script(_RELEASE)

    def owner_key(self, gateway: str, key: str) -> str:
        """The Redis key naming the owner of scope ``key`` of ``gateway``."""
        return f"{self.prefix}:owner:{gateway}\n{key}"

    async def join(self) -> None:
        """Become a member (again), for ``lease`` seconds.

        Raises:
            redis.RedisError: Redis cannot be reached.
        """
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self.member_prefix + self.daemon, "1", px=self.lease_ms)
            pipe.zadd(f"{self.prefix}:members", {self.daemon: _now_ms() + self.lease_ms})
            await pipe.execute()

    async def renew(self) -> bool:
        """Extend the membership by ``lease`` seconds; False when it had expired already (the
        others may have taken this daemon's scopes over: it must end them all)."""
        now = _now_ms()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.pexpire(self.member_prefix + self.daemon, self.lease_ms)
            pipe.zadd(f"{self.prefix}:members", {self.daemon: now + self.lease_ms})
            pipe.zremrangebyscore(f"{self.prefix}:members", "-inf", now)
            renewed, _, _ = await pipe.execute()
        return bool(renewed)

    async def leave(self) -> None:
        """Stop being a member, at once (a daemon that stops hands its scopes back)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.member_prefix + self.daemon)
            pipe.zrem(f"{self.prefix}:members", self.daemon)
            await pipe.execute()

    async def members(self) -> list[str]:
        """The daemons whose membership has not run out, sorted."""
        found = await self._redis.zrangebyscore(f"{self.prefix}:members", _now_ms(), "+inf")
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in found)

    async def alive(self, daemons: Iterable[str]) -> set[str]:
        """Those of ``daemons`` that are members now."""
        wanted = sorted(set(daemons))
        if not wanted:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for daemon in wanted:
                pipe.exists(self.member_prefix + daemon)
            found = await pipe.execute()
        return {daemon for daemon, exists in zip(wanted, found, strict=True) if exists}

    async def claim(self, gateway: str, key: str, target: str) -> Claim:
        """Claim scope ``key`` of ``gateway`` for ``target`` unless a member owns it."""
        args: list[Any] = [self.daemon, self.member_prefix, target]
        reply = await self._claim(
            keys=[self.owner_key(gateway, key), f"{self.prefix}:fence"], args=args
        )
        owner, token, previous = reply
        return Claim(_text(owner), int(token), _text(previous))

    async def release(self, scopes: Sequence[tuple[str, str]]) -> int:
        """Give up the scopes ``(gateway, key)`` that this daemon still owns."""
        if not scopes:
            return 0
        keys = [self.owner_key(gateway, key) for gateway, key in scopes]
        return int(await self._release(keys=keys, args=[self.daemon]))

    async def close(self) -> None:
        """Close the connections."""
        await self._redis.aclose()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
