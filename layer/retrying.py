"""Waiting out a store or a channel layer that is away: one retry policy for the daemon.

A durable consumer's load and save (``consumers.state``), a gateway's receive of addressed
events (``gateways.addressing``) and a cluster's claims in Redis (``gateways.daemon.cluster``)
each wait for a server that does not answer rather than lose the event in hand: they retry
the call with tenacity's exponential backoff with jitter, for ever, logging each wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

__all__ = ["RETRY_INITIAL", "RETRY_MAX", "Warn", "retry_forever"]

T = TypeVar("T")

#: Seconds before the first retry (then doubled, with as much jitter), and the longest wait.
RETRY_INITIAL = 0.1
RETRY_MAX = 5.0

#: ``warn(exc, delay)``: log that the call failed with ``exc`` and is retried in ``delay`` s.
Warn = Callable[[BaseException | None, float], None]


async def retry_forever(
    call: Callable[[], Awaitable[T]],
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    warn: Warn,
    initial: float = RETRY_INITIAL,
    maximum: float = RETRY_MAX,
) -> T:
    """``await call()``, again after ``retry_on`` with backoff and jitter, until it returns.

    The first attempt is a plain call: tenacity's machinery (most of a save on a fast store,
    ``bench/state_scopes.py``) is set up only once the call has failed.

    Args:
        call: Makes the awaitable to retry (called again for each attempt).
        retry_on: The exceptions that mean "away, try again"; any other is raised.
        warn: Called before each wait with the exception and the seconds it will wait.
        initial: Seconds of the first wait; each next one doubles, plus up to ``initial``
            of jitter.
        maximum: The longest wait, in seconds.

    Raises:
        Exception: Whatever ``call`` raises that is not ``retry_on``.
    """
    try:
        return await call()
    except retry_on as exc:
        warn(exc, initial)
        await asyncio.sleep(initial)

    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        warn(outcome.exception() if outcome is not None else None, state.upcoming_sleep)

    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(retry_on),
        wait=wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial),
        before_sleep=before_sleep,
        sleep=asyncio.sleep,
        reraise=True,
    ):
        with attempt:
            return await call()
    raise RuntimeError("unreachable")  # pragma: no cover (AsyncRetrying returns or raises)
