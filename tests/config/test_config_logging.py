"""The logging section, applied to the standard library's logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from config import LoggingConfig, load_config_text

LOGGER_NAMES = ("cfg_test.noisy", "cfg_test.quiet")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and the test loggers back as they were (apply() changes them)."""
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved = {name: logging.getLogger(name).level for name in LOGGER_NAMES}
    yield
    for handler in root.handlers:
        if handler not in saved_root[1]:
            handler.close()
    root.setLevel(saved_root[0])
    root.handlers[:] = saved_root[1]
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_apply_sets_levels_and_format(capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config_text(
        "application: app:application\ngateways: {g: {type: mqtt}}\n"
        "logging:\n"
        "  level: warning\n"
        "  format: '%(levelname)s|%(name)s|%(message)s'\n"
        "  loggers: {cfg_test.noisy: error, cfg_test.quiet: DEBUG}\n",
        environ={},
    )
    existing = logging.getLogger("cfg_test.existing")  # made before apply(): stays enabled

    config.logging.apply()

    assert logging.getLogger().level == logging.WARNING
    assert logging.getLogger("cfg_test.noisy").level == logging.ERROR
    assert logging.getLogger("cfg_test.quiet").level == logging.DEBUG
    logging.getLogger("cfg_test.noisy").warning("dropped")
    logging.getLogger("cfg_test.quiet").debug("kept %d", 1)
    existing.warning("still here")
    logging.getLogger("cfg_test.other").info("below the root level")
    assert capsys.readouterr().err.splitlines() == [
        "DEBUG|cfg_test.quiet|kept 1",
        "WARNING|cfg_test.existing|still here",
    ]


def test_defaults() -> None:
    config = LoggingConfig()
    assert config.level == "INFO"
    assert config.format == "%(asctime)s %(levelname)s %(name)s: %(message)s"
    assert config.loggers == {}
    assert config.dict_config()["root"] == {"level": "INFO", "handlers": ["stderr"]}
    assert config.dict_config()["disable_existing_loggers"] is False


@pytest.mark.parametrize("level", ["info", "Warning", "CRITICAL", "notset", " debug "])
def test_level_names_in_any_case(level: str) -> None:
    assert LoggingConfig(level=level).level == level.strip().upper()


@pytest.mark.parametrize("level", ["LOUD", "", "10"])
def test_unknown_level_is_rejected(level: str) -> None:
    with pytest.raises(ValidationError, match="must be a logging level name"):
        LoggingConfig(level=level)


def test_bad_format_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must be a %-style logging format"):
        LoggingConfig(format="{levelname} {message}")
