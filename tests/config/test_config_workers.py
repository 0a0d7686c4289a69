"""The ``workers:`` section: channel names by the layer's rules, each error with its path and
line, and a file may hold workers without gateways."""

from __future__ import annotations

import pytest

from config import ConfigError, WorkersConfig, load_config_text
from layer import InvalidName, require_valid_channel_name


def load_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, filename="gateway.yaml")
    return info.value


def test_a_workers_section_without_gateways_is_a_valid_file() -> None:
    config = load_config_text("application: app:application\nworkers:\n  channels: [thumbnails]\n")
    assert config.workers == WorkersConfig(channels=["thumbnails"])
    assert config.gateways == {}


def test_a_file_with_neither_gateways_nor_workers_names_gateways() -> None:
    error = load_error("application: app:application\nlayer: {type: memory}\n")
    assert error.path == ("gateways",)
    assert "required key is missing" in str(error)


def test_worker_options_are_kept_for_the_workers_model() -> None:
    config = load_config_text(
        "application: app:application\n"
        "workers:\n"
        "  channels: [thumbnails, reports]\n"
        "  max_queued_events: 4\n"
    )
    assert config.workers is not None
    assert config.workers.channels == ["thumbnails", "reports"]
    assert config.workers.options == {"max_queued_events": 4}


@pytest.mark.parametrize(
    ("channels", "path", "line", "what"),
    [
        ("  channels: []\n", ("workers", "channels"), 3, "at least 1 item"),
        (
            "  channels:\n    - thumbnails\n    - reply!abc\n",
            ("workers", "channels", 1),
            5,
            "'reply!abc' is a process-specific channel name",
        ),
        (
            "  channels:\n    - thumbnails\n    - thumb nails\n",
            ("workers", "channels", 1),
            5,
            "'thumb nails' is not a valid channel name",
        ),
        (
            "  channels: [thumbnails, thumbnails]\n",
            ("workers", "channels"),
            3,
            "'thumbnails' is listed twice",
        ),
        ("  channels: thumbnails\n", ("workers", "channels"), 3, "valid list"),
        ("  queue: 3\n", ("workers", "channels"), 2, "required key is missing"),
    ],
)
def test_bad_channels_are_located(
    channels: str, path: tuple[str | int, ...], line: int, what: str
) -> None:
    error = load_error(
        f"application: app:application\nworkers:\n{channels}gateways:\n  d: {{type: mqtt}}\n"
    )
    assert (error.path, error.line) == (path, line)
    assert what in str(error)
    assert str(error).startswith(f"gateway.yaml:{line}: ")


def test_an_invalid_workers_section_is_reported_alone() -> None:
    error = load_error("application: app:application\nworkers:\n  channels: ['a!b']\n")
    assert [e.path for e in error.errors] == [("workers", "channels", 0)]


@pytest.mark.parametrize(
    "name",
    ["thumbnails", "a.b-c_d", "x" * 99, "x" * 100, "sp ace", "ünï", "a!b", "a!", "", "a/b"],
)
def test_the_config_accepts_the_channel_names_the_layer_accepts_without_bang(name: str) -> None:
    try:
        require_valid_channel_name(name)
        layer_accepts = "!" not in name
    except InvalidName:
        layer_accepts = False
    text = f"application: app:application\nworkers:\n  channels: [{name!r}]\n"
    try:
        load_config_text(text)
        config_accepts = True
    except ConfigError:
        config_accepts = False
    assert config_accepts == layer_accepts
