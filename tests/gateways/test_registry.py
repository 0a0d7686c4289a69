"""Gateway types resolve through the ``asgi_gateway.gateways`` entry points, ours included."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from config import ConfigError
from gateways.daemon.listing import describe_adapters
from gateways.daemon.registry import (
    BUILTIN_GATEWAYS,
    ENTRY_POINT_GROUP,
    installed_gateways,
    resolve_gateway,
)
from gateways.mqtt import MqttGateway

ROOT = Path(__file__).resolve().parents[2]

ADAPTER_MODULE = """
from gateways.base import Gateway

class FakeGateway(Gateway):
    protocol = "fake"

    async def start_transport(self): pass
    async def close_transport(self): pass
    async def handle_send(self, instance, message): pass

NotAGateway = object()
"""


def install_distribution(site: Path, dist: str, entries: dict[str, str]) -> None:
    """Lay out a distribution on ``site`` as pip would: its dist-info, metadata and entry
    points (importlib.metadata reads exactly these files)."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {value}" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding the module ``fake_adapter``."""
    (tmp_path / "fake_adapter.py").write_text(ADAPTER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("fake_adapter", None)


def test_the_builtins_are_our_own_entry_points() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"][ENTRY_POINT_GROUP] == BUILTIN_GATEWAYS
    adapters = installed_gateways()
    for name, value in BUILTIN_GATEWAYS.items():
        (entry,) = adapters[name]
        assert entry.value == value
        assert entry.distribution.startswith("asgi-gateway ")
    assert resolve_gateway("mqtt") is MqttGateway


def test_an_installed_adapter_resolves_by_its_entry_point_name(site: Path) -> None:
    install_distribution(site, "fake-gateway", {"fake": "fake_adapter:FakeGateway"})
    cls = resolve_gateway("fake")
    assert cls.__name__ == "FakeGateway"
    (entry,) = installed_gateways()["fake"]
    assert entry.distribution == "fake-gateway 1.0"


def test_two_distributions_claiming_one_name_is_an_error_naming_both(site: Path) -> None:
    install_distribution(site, "fake-gateway", {"fake": "fake_adapter:FakeGateway"})
    install_distribution(site, "other-gateway", {"fake": "fake_adapter:FakeGateway"})
    with pytest.raises(ConfigError, match="claimed by more than one") as caught:
        resolve_gateway("fake")
    assert "fake-gateway 1.0" in str(caught.value)
    assert "other-gateway 1.0" in str(caught.value)


def test_an_adapter_claiming_a_builtin_name_is_refused_not_silently_preferred(site: Path) -> None:
    install_distribution(site, "fake-gateway", {"mqtt": "fake_adapter:FakeGateway"})
    with pytest.raises(ConfigError, match="'mqtt' is claimed by more than one") as caught:
        resolve_gateway("mqtt")
    ours = f"asgi-gateway {version('asgi-gateway')} (gateways.mqtt:MqttGateway)"
    assert ours in str(caught.value)
    assert "fake-gateway 1.0 (fake_adapter:FakeGateway)" in str(caught.value)


def test_an_entry_point_that_is_not_a_gateway_is_a_clear_error(site: Path) -> None:
    install_distribution(site, "fake-gateway", {"fake": "fake_adapter:NotAGateway"})
    with pytest.raises(ConfigError, match=r"'fake' \(from fake-gateway 1\.0\) is .*not a Gateway"):
        resolve_gateway("fake")


def test_an_unknown_name_lists_what_is_installed() -> None:
    with pytest.raises(ConfigError, match=r"unknown gateway type 'mqtt5'; installed: .*mqtt"):
        resolve_gateway("mqtt5")


def test_an_import_path_still_works(site: Path) -> None:
    assert resolve_gateway("fake_adapter:FakeGateway").__name__ == "FakeGateway"


def test_the_listing_shows_each_adapter_its_origin_and_options(site: Path) -> None:
    install_distribution(site, "fake-gateway", {"fake": "fake_adapter:FakeGateway"})
    install_distribution(site, "broken-gateway", {"broken": "fake_adapter:Missing"})
    text = describe_adapters()
    assert text.startswith("Every gateway takes:\n    idle_timeout: float | None = 600.0  Seconds")
    assert "\nfake  (fake-gateway 1.0, fake_adapter:FakeGateway)\n" in text
    assert f"\nmqtt  (asgi-gateway {version('asgi-gateway')}, gateways.mqtt:MqttGateway)\n" in text
    assert "\n    keepalive: int = 60  Seconds between keep-alive PINGREQs" in text
    assert "\n    password: SecretStr | None  Password;" in text  # no default shown
    assert "\nbroken  (broken-gateway 1.0, fake_adapter:Missing)\n    cannot load: " in text


def test_the_gateways_command_lists_the_installed_adapters() -> None:
    """``asgi-gateway gateways``, as a user runs it: the console script's module."""
    result = subprocess.run(
        [sys.executable, "-m", "gateways", "gateways"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in BUILTIN_GATEWAYS:
        assert f"\n{name}  (asgi-gateway " in result.stdout
    assert "\n    route_qos: Literal[0, 1, 2] = 0  QoS of the subscriptions" in result.stdout
    assert "cannot load" not in result.stdout  # every built-in imports with the test extras


def test_an_adapter_whose_library_is_missing_says_what_to_install(site: Path) -> None:
    (site / "needy_adapter.py").write_text("import no_such_library_for_asgi_gateway\n")
    install_distribution(site, "needy-gateway", {"needy": "needy_adapter:NeedyGateway"})
    with pytest.raises(ConfigError) as caught:
        resolve_gateway("needy")
    assert str(caught.value) == (
        "gateway type 'needy' (from needy-gateway 1.0) cannot be imported: "
        "No module named 'no_such_library_for_asgi_gateway'"
    )
    assert "\nneedy  (needy-gateway 1.0, needy_adapter:NeedyGateway)\n    cannot load: " in (
        describe_adapters()
    )
    sys.modules.pop("needy_adapter", None)
