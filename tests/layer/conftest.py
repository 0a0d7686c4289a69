"""Fixtures of the channel layer conformance suite.

``layer_impl`` is parametrised over every layer implementation; Channels' own
``channels.layers.InMemoryChannelLayer`` is the reference. A test that Channels' in-memory
layer fails because it differs from the specification is marked
``@pytest.mark.differs_from_spec("channels", reason=...)``: its Channels variant is
deselected at collection (the reason is the marker's), so the suite asserts the
specification, never a known departure from it. (They once ran as strict xfails; rendering
those expected failures' tracebacks trips a CPython 3.11.7 parser bug, "AST constructor
recursion depth mismatch", which crashes pytest itself.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import channels.exceptions
import channels.layers
import pytest

from layer import ChannelFull, InMemoryChannelLayer


@dataclass(frozen=True)
class LayerImpl:
    """One channel layer implementation under test."""

    name: str
    build: Callable[..., Any]
    channel_full: type[Exception]


IMPLEMENTATIONS = {
    "memory": LayerImpl("memory", InMemoryChannelLayer, ChannelFull),
    "channels": LayerImpl(
        "channels", channels.layers.InMemoryChannelLayer, channels.exceptions.ChannelFull
    ),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "differs_from_spec(*impls, reason): the named layer implementations differ from the "
        "Channels layer spec in this test, which is deselected for them",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("differs_from_spec")
        callspec = getattr(item, "callspec", None)
        impl = callspec.params.get("layer_impl") if callspec is not None else None
        (drop if marker is not None and impl in marker.args else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=list(IMPLEMENTATIONS))
def layer_impl(request: pytest.FixtureRequest) -> LayerImpl:
    return IMPLEMENTATIONS[request.param]


@pytest.fixture
async def make_layer(layer_impl: LayerImpl) -> AsyncIterator[Callable[..., Any]]:
    """Build layers of the implementation under test with options; closed afterwards."""
    built: list[Any] = []

    def make(**options: Any) -> Any:
        layer = layer_impl.build(**options)
        built.append(layer)
        return layer

    yield make
    for layer in built:
        await layer.close()


@pytest.fixture
def layer(make_layer: Callable[..., Any]) -> Any:
    return make_layer()


@pytest.fixture
def channel_full(layer_impl: LayerImpl) -> type[Exception]:
    """The ``ChannelFull`` exception of the implementation under test."""
    return layer_impl.channel_full
