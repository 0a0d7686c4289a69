"""Fixtures of the consumers tests: a channel layer of each kind."""

from __future__ import annotations

from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer

from layer import InMemoryChannelLayer


@pytest.fixture(params=["ours", "channels"])
def channel_layer(request: pytest.FixtureRequest) -> Any:
    """Our in-memory layer (receive() returns a Future) and Channels' (a coroutine)."""
    if request.param == "ours":
        return InMemoryChannelLayer()
    return ChannelsInMemoryChannelLayer()
