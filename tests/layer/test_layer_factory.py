"""``build_layer``: short names, import paths, and clear errors for everything else."""

from __future__ import annotations

import channels.layers
import pytest
from layer_helpers import receive

from layer import LAYER_TYPES, InMemoryChannelLayer, LayerError, RedisChannelLayer, build_layer


def test_the_default_is_our_in_memory_layer() -> None:
    layer = build_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert layer.capacity == 100


def test_a_short_name_with_options() -> None:
    layer = build_layer("memory", {"capacity": 5, "expiry": 2, "group_expiry": 30})
    assert isinstance(layer, InMemoryChannelLayer)
    assert (layer.capacity, layer.expiry, layer.group_expiry) == (5, 2, 30)


def test_redis_builds_our_redis_layer_with_channels_redis_options() -> None:
    layer = build_layer(
        "redis",
        {"hosts": ["redis://localhost:6390"], "prefix": "app", "capacity": 7, "expiry": 5},
    )
    assert isinstance(layer, RedisChannelLayer)
    assert (layer.prefix, layer.capacity, layer.expiry) == ("app", 7, 5)
    assert LAYER_TYPES["redis"] == "layer.redis:RedisChannelLayer"


def test_an_unknown_redis_option_names_the_options_it_takes() -> None:
    with pytest.raises(LayerError, match=r"unknown option 'hostz'.*hosts, prefix, expiry"):
        build_layer("redis", {"hostz": ["redis://localhost"]})


@pytest.mark.parametrize(
    "path", ["channels.layers.InMemoryChannelLayer", "channels.layers:InMemoryChannelLayer"]
)
async def test_channels_own_layer_by_import_path_with_options(path: str) -> None:
    layer = build_layer(path, {"capacity": 7, "expiry": 5})
    assert type(layer) is channels.layers.InMemoryChannelLayer
    assert (layer.capacity, layer.expiry) == (7, 5)  # type: ignore[attr-defined]
    await layer.send("test.channel", {"type": "test.message"})
    assert await receive(layer, "test.channel") == {"type": "test.message"}


def test_our_layer_by_import_path() -> None:
    assert isinstance(build_layer("layer.memory:InMemoryChannelLayer"), InMemoryChannelLayer)


@pytest.mark.parametrize(
    "path",
    [
        "memroy",
        "no_such_module.Layer",
        "layer.memory:NoSuchLayer",
        "layer.memory:",
        "a:b:c",
    ],
)
def test_a_type_that_does_not_resolve_is_a_layer_error_naming_it(path: str) -> None:
    with pytest.raises(LayerError, match=repr(path).replace(".", r"\.")):
        build_layer(path)


def test_a_type_that_is_not_a_class() -> None:
    with pytest.raises(LayerError, match="not a class"):
        build_layer("layer.base:MAX_NAME_LENGTH")


@pytest.mark.parametrize("bad", ["", None, 5])
def test_a_type_must_be_a_non_empty_str(bad: object) -> None:
    with pytest.raises(LayerError, match="non-empty str"):
        build_layer(bad)  # type: ignore[arg-type]


def test_an_unknown_option_names_itself_and_the_class() -> None:
    with pytest.raises(
        LayerError,
        match=r"unknown option 'capacty' for channel layer layer\.memory\.InMemoryChannelLayer"
        r"; it takes: expiry, group_expiry, capacity, channel_capacity",
    ):
        build_layer("memory", {"capacty": 5})


def test_an_unknown_option_of_a_class_taking_kwargs_is_a_layer_error() -> None:
    # Channels' InMemoryChannelLayer takes **kwargs and hands them to its base class.
    with pytest.raises(LayerError, match=r"channels\.layers\.InMemoryChannelLayer.*hosts"):
        build_layer("channels.layers.InMemoryChannelLayer", {"hosts": []})


def test_a_bad_option_value_is_a_layer_error() -> None:
    with pytest.raises(LayerError, match="capacity must be an int of at least 1, got -1"):
        build_layer("memory", {"capacity": -1})
