"""The ``hosts`` option of channels_redis 4.x, and connection pools built from it.

Each entry of ``hosts`` is one shard, in one of the forms channels_redis accepts
(``channels_redis.utils.decode_hosts`` and ``create_pool``):

- a URL string: ``"redis://:password@10.0.0.1:6379/0"``, ``"rediss://..."``,
  ``"unix:///run/redis.sock"``;
- a ``(host, port)`` tuple or list;
- a dict with ``"address"`` (a URL) and more keyword arguments of redis-py's
  ``ConnectionPool.from_url`` (e.g. ``"ssl_cert_reqs"``);
- a dict of redis-py ``ConnectionPool`` keyword arguments (``"host"``, ``"port"``,
  ``"password"``, ``"db"``, ...);
- a Sentinel dict: ``{"master_name": "mymaster", "sentinels": [("10.0.0.2", 26379)],
  "sentinel_kwargs": {...}, ...more pool keyword arguments}``.

No hosts (None or empty) means ``redis://localhost:6379``, as in channels_redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import ConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from ..base import LayerError

__all__ = ["decode_hosts", "describe_host", "make_pool"]

DEFAULT_HOST = "redis://localhost:6379"


def decode_hosts(hosts: object) -> list[dict[str, Any]]:
    """Normalise ``hosts`` into one dict of connection options per shard.

    Args:
        hosts: None, or a list of URL strings, ``(host, port)`` pairs or dicts.

    Returns:
        One dict per shard: ``{"address": url, ...}``, pool options, or Sentinel settings.

    Raises:
        LayerError: A single string instead of a list (as channels_redis refuses), or an
            entry of another type.
    """
    if not hosts:
        return [{"address": DEFAULT_HOST}]
    if isinstance(hosts, str | bytes):
        raise LayerError(
            f"hosts must be a list of Redis hosts, even if there is only one: got {hosts!r}"
            " (write [" + repr(hosts) + "])"
        )
    if not isinstance(hosts, Sequence):
        raise LayerError(f"hosts must be a list of Redis hosts, got {hosts!r}")
    result: list[dict[str, Any]] = []
    for index, entry in enumerate(hosts):
        if isinstance(entry, dict):
            result.append(dict(entry))
        elif isinstance(entry, tuple | list) and len(entry) == 2:
            result.append({"host": entry[0], "port": entry[1]})
        elif isinstance(entry, str):
            result.append({"address": entry})
        else:
            raise LayerError(
                f"hosts[{index}] must be a URL str, a (host, port) pair or a dict, got {entry!r}"
            )
    return result


def describe_host(host: dict[str, Any]) -> str:
    """A host for logs and errors, without its password: ``"redis://10.0.0.1:6379/0"``."""
    if "address" in host:
        parts = urlsplit(str(host["address"]))
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        return f"{parts.scheme}://{netloc}{parts.path}"
    if "master_name" in host:
        return f"sentinel master {host['master_name']!r}"
    return f"redis://{host.get('host', 'localhost')}:{host.get('port', 6379)}/{host.get('db', 0)}"


def make_pool(host: dict[str, Any], **overrides: Any) -> ConnectionPool:
    """A redis-py asyncio connection pool for one shard, as channels_redis builds it.

    Args:
        host: One entry of ``decode_hosts``.
        **overrides: Pool options that take precedence (e.g. ``socket_timeout`` for the
            connections of blocking pops).

    Returns:
        The pool; it connects lazily.

    Raises:
        LayerError: redis-py refuses the options (a bad URL or keyword), naming the host.
    """
    options = {**host, **overrides}
    try:
        if "address" in options:
            address = options.pop("address")
            return ConnectionPool.from_url(address, **options)
        master_name = options.pop("master_name", None)
        if master_name is not None:
            sentinels = options.pop("sentinels")
            sentinel_kwargs = options.pop("sentinel_kwargs", None)
            sentinel = Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call,unused-ignore]
            return SentinelConnectionPool(master_name, sentinel, **options)  # type: ignore[no-untyped-call]
        return ConnectionPool(**options)
    except (TypeError, ValueError, KeyError) as exc:
        raise LayerError(f"bad Redis host {describe_host(host)}: {exc}") from exc
