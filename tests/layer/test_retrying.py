"""layer.retrying.retry_forever: the one retry policy of the stores' and layers' callers."""

from __future__ import annotations

import pytest

from layer.retrying import retry_forever


async def test_a_call_that_fails_is_retried_with_growing_waits_each_warned() -> None:
    attempts = 0
    warned: list[tuple[str, float]] = []

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise ConnectionError(f"down {attempts}")
        return "up"

    result = await retry_forever(
        flaky,
        retry_on=ConnectionError,
        warn=lambda exc, delay: warned.append((str(exc), delay)),
        initial=0.001,
        maximum=0.01,
    )
    assert result == "up"
    assert attempts == 4
    assert [why for why, _ in warned] == ["down 1", "down 2", "down 3"]
    assert all(0 < delay <= 0.011 for _, delay in warned)


async def test_an_exception_it_does_not_retry_is_raised_at_once() -> None:
    attempts = 0
    warned: list[object] = []

    async def broken() -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await retry_forever(broken, retry_on=ConnectionError, warn=lambda *a: warned.append(a))
    assert attempts == 1
    assert warned == []


async def test_a_call_that_succeeds_first_is_called_once() -> None:
    calls = 0

    async def fine() -> int:
        nonlocal calls
        calls += 1
        return 7

    assert await retry_forever(fine, retry_on=Exception, warn=lambda *a: None) == 7
    assert calls == 1
