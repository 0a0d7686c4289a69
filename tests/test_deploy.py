"""The deployment files of examples/deploy/: the Dockerfile (linted by hadolint, its health
check run against a real daemon, as Docker would run it) and the systemd unit (checked by
systemd-analyze). No Docker engine runs here, so the image itself is not built."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "examples" / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
UNIT = DEPLOY / "asgi-gateway.service"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def the(keyword: str) -> list[str]:
    return [rest for key, rest in instructions() if key == keyword]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_slim_runs_as_a_user_and_checks_its_health() -> None:
    (base,) = the("FROM")
    assert base.endswith("-slim")
    user = the("USER")[-1]
    assert user not in ("root", "0")
    (healthcheck,) = the("HEALTHCHECK")
    assert "/healthz" in healthcheck
    for source in (s for copy in the("COPY") for s in copy.split()[:-1]):
        assert (ROOT / source).exists(), f"COPY {source}: not in the build context"


def test_the_systemd_unit_verifies() -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is installed by .ci/run (Debian systemd)"
    # The unit names the install prefix and config folder of a real host; here those are
    # this virtual environment and a temporary folder.
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"unit-{os.getpid()}"
    directory.mkdir(exist_ok=True)
    unit = directory / UNIT.name
    unit.write_text(
        UNIT.read_text()
        .replace("/opt/asgi-gateway", sys.prefix)
        .replace("/etc/asgi-gateway", str(directory))
    )
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "asgi-gateway run" in UNIT.read_text()


@pytest.mark.mosquitto
def test_the_health_check_passes_against_the_daemon_the_image_runs(
    mosquitto: Any, free_port: Any
) -> None:
    port = str(free_port())
    env = {
        **os.environ,
        "MQTT_URL": mosquitto.url,
        "MONITORING_PORT": port,
        "PYTHONPATH": str(ROOT / "examples"),  # the image copies echo.py beside the YAML
    }
    (entrypoint,) = the("ENTRYPOINT")
    (cmd,) = the("CMD")
    command = [*json.loads(entrypoint), str(DEPLOY / "gateway.yaml")]
    assert json.loads(cmd) == ["/app/gateway.yaml"]
    assert command[0] == "asgi-gateway"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "gateways", *command[1:]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    check = json.loads(the("HEALTHCHECK")[0].split(" CMD ", 1)[1])
    try:
        deadline = time.monotonic() + 20
        while True:
            result = subprocess.run(check, env=env, capture_output=True, timeout=10, check=False)
            if result.returncode == 0:
                break
            assert daemon.poll() is None, daemon.communicate()[0].decode()
            assert time.monotonic() < deadline, result.stderr.decode()
            time.sleep(0.2)
    finally:
        daemon.terminate()
        out, _ = daemon.communicate(timeout=20)
    assert daemon.returncode == 0, out.decode()
    # --log-format json: every line the daemon wrote is a JSON object.
    for line in out.decode().splitlines():
        assert isinstance(json.loads(line), dict), line


def test_the_scrape_configuration_and_the_probes_name_the_monitoring_endpoints() -> None:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    daemon = yaml.load((DEPLOY / "gateway.yaml").read_text())
    port = daemon["monitoring"]["port"].split(":-")[1].rstrip("}")  # ${MONITORING_PORT:-9464}
    scrape = yaml.load((DEPLOY / "prometheus.yml").read_text())
    (target,) = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert target.endswith(f":{port}")
    probes = yaml.load((DEPLOY / "probes.yaml").read_text())
    assert probes["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": int(port)}
    assert probes["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": int(port)}
    assert f"EXPOSE {port}" in DOCKERFILE.read_text()
