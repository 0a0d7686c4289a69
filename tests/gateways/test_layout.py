"""The layout users import from: the adapter API at gateways' root, one subpackage per adapter,
the daemon in gateways.daemon, the test kits in gateways.testing."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import gateways
from gateways import Gateway, GatewayOptions
from gateways.daemon.registry import BUILTIN_GATEWAYS, resolve_gateway


@pytest.mark.parametrize("name", sorted(BUILTIN_GATEWAYS))
def test_each_adapter_package_exports_its_gateway_and_options(name: str) -> None:
    package = importlib.import_module(f"gateways.{name}")
    exported = [getattr(package, attr) for attr in package.__all__]
    gateway_class = resolve_gateway(name)
    assert gateway_class in exported
    assert issubclass(gateway_class, Gateway)
    assert gateway_class.options_model in exported
    assert issubclass(gateway_class.options_model, GatewayOptions)


def test_the_test_kits_are_in_gateways_testing() -> None:
    from gateways import testing

    for name in testing.__all__:
        assert getattr(testing, name) is not None
    assert testing.SlackTestServer.__module__ == "gateways.testing.slack_server"
    assert testing.GatewayConformance.__module__ == "gateways.testing.conformance"


def test_import_gateways_imports_no_adapter() -> None:
    code = (
        "import sys, gateways, gateways.testing\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('aiomqtt', 'slack_bolt', 'pydle', 'aiohttp', 'pytest')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "[]"


def test_no_adapter_imports_the_daemon() -> None:
    """Adapters build on the adapter API at gateways' root; the daemon finds them through
    the registry (docs/architecture.md). Importing every built-in adapter and the test kits
    loads nothing of gateways.daemon."""
    names = ", ".join(f"gateways.{name}" for name in sorted(BUILTIN_GATEWAYS))
    code = (
        f"import sys, gateways.testing, {names}\n"
        "print(sorted(m for m in sys.modules if m.startswith('gateways.daemon')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_the_daemon_is_in_its_own_room() -> None:
    from gateways import daemon

    assert daemon.Daemon.__module__ == "gateways.daemon.server"
    assert daemon.Worker.__module__ == "gateways.daemon.worker"
    assert daemon.resolve_gateway("mqtt").__module__ == "gateways.mqtt.gateway"
    assert not hasattr(gateways, "Daemon")


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        gateways.Nope  # noqa: B018
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("gateways.mqtt_nope")
