"""The ``monitoring:`` section: absent means no server, ``host`` defaults to loopback, and a
bad port or an unknown key is an error with its key path and line (``check`` exits 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, MonitoringConfig, load_config_text

ROOT = Path(__file__).resolve().parents[2]

BASE = "application: app:application\ngateways:\n  mqtt: {type: mqtt}\n"


def load_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, filename="gateway.yaml")
    return info.value


def test_no_monitoring_section_means_no_server() -> None:
    assert load_config_text(BASE).monitoring is None


def test_the_host_defaults_to_loopback() -> None:
    config = load_config_text(BASE + "monitoring:\n  port: 9464\n")
    assert config.monitoring == MonitoringConfig(host="127.0.0.1", port=9464)


def test_the_port_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_PORT", "9500")
    config = load_config_text(
        BASE + "monitoring: {host: 0.0.0.0, port: '${MONITORING_PORT:-9464}'}\n"
    )
    assert config.monitoring == MonitoringConfig(host="0.0.0.0", port=9500)


@pytest.mark.parametrize("port", ["99999", "-1", "http", "1.5"])
def test_a_bad_port_is_named_with_its_line(port: str) -> None:
    error = load_error(BASE + f"monitoring:\n  host: 127.0.0.1\n  port: {port}\n")
    assert error.path == ("monitoring", "port")
    assert "gateway.yaml:6" in str(error)


def test_a_section_without_a_port_is_an_error() -> None:
    error = load_error(BASE + "monitoring:\n  host: 127.0.0.1\n")
    assert error.path == ("monitoring", "port")


def test_an_unknown_key_is_named_with_its_line() -> None:
    error = load_error(BASE + "monitoring:\n  port: 9464\n  path: /metrics\n")
    assert error.path == ("monitoring", "path")
    assert "gateway.yaml:6" in str(error)


@pytest.mark.parametrize(
    ("section", "key", "line"),
    [
        ("monitoring: {port: 99999}\n", "monitoring.port", 4),
        ("monitoring:\n  port: 9464\n  bind: 0.0.0.0\n", "monitoring.bind", 6),
    ],
)
def test_check_exits_2_naming_the_key_and_its_line(
    tmp_path: Path, section: str, key: str, line: int
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: echo:application\ngateways:\n  mqtt: {type: mqtt, broker: 'mqtt://127.0.0.1:1'}\n"
        + section
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateways", "check", str(config)],
        cwd=ROOT / "examples",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"gateway.yaml:{line}" in result.stderr
    assert key in result.stderr
