"""``logging: {format: json}``: the value, the overrides of ``--log-format``, and the JSON
formatter's lines (redacted) through the standard library's logging."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from config import LoggingConfig, load_config_text

DEFAULT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was (apply() replaces its handlers)."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    for handler in root.handlers:
        if handler not in saved[1]:
            handler.close()
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


@pytest.mark.parametrize("value", ["json", "JSON", " Json "])
def test_json_in_any_case(value: str) -> None:
    config = LoggingConfig(format=value)
    assert config.format == "json"
    assert config.is_json
    assert config.dict_config()["formatters"] == {
        "default": {"()": "config.logjson.JsonLogFormatter"}
    }


def test_a_percent_format_stays_text() -> None:
    config = LoggingConfig(format="%(message)s")
    assert not config.is_json
    assert config.dict_config()["formatters"] == {"default": {"format": "%(message)s"}}


def test_the_error_names_json() -> None:
    with pytest.raises(ValidationError, match="or 'json' for one JSON object per line"):
        LoggingConfig(format="jsonl")


@pytest.mark.parametrize(
    ("file_format", "flag", "expected"),
    [
        (DEFAULT, "json", "json"),
        ("%(message)s", "json", "json"),
        ("json", "text", DEFAULT),
        ("%(message)s", "text", "%(message)s"),
        ("json", "json", "json"),
    ],
)
def test_choose_format(file_format: str, flag: str, expected: str) -> None:
    config = LoggingConfig(format=file_format)
    config.choose_format(flag)  # type: ignore[arg-type]
    assert config.format == expected


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config_text(
        "application: app:application\ngateways: {g: {type: mqtt}}\nlogging: {format: json}\n",
        environ={},
    )
    config.logging.apply()
    log = logging.getLogger("cfg_test.json")
    try:
        raise RuntimeError("cannot reach redis://:hunter2@cache:6379/0")
    except RuntimeError:
        log.exception(
            "connecting to mqtt://bob:hunter2@broker",
            extra={"gateway": "g", "scope": "a/b", "api_token": "hunter2"},
        )
    log.info("plain %d", 1)
    err = capsys.readouterr().err
    assert "hunter2" not in err
    first, second = (json.loads(line) for line in err.splitlines())
    assert list(first)[:4] == ["time", "level", "logger", "message"]
    assert first["level"] == "ERROR"
    assert first["logger"] == "cfg_test.json"
    assert first["message"] == "connecting to mqtt://bob:***@broker"
    assert "RuntimeError: cannot reach redis://:***@cache:6379/0" in first["exception"]
    assert (first["gateway"], first["scope"], first["api_token"]) == ("g", "a/b", "**********")
    assert second["message"] == "plain 1"
    assert "gateway" not in second
    assert "exception" not in second
