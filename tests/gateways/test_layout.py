"""The layout users import from: one subpackage per adapter, the test kits in gateways.testing,
and the paths and names before 0.2 still importing, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import gateways
from gateways import Gateway, GatewayOptions
from gateways.moved import MOVED_MODULES
from gateways.registry import BUILTIN_GATEWAYS, resolve_gateway


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


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_an_old_module_path_warns_and_forwards(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    target = importlib.import_module(new)
    for name in getattr(target, "__all__", ()):
        assert getattr(module, name) is getattr(target, name)


def test_from_an_old_path_import_a_name() -> None:
    sys.modules.pop("gateways.slack_testing", None)
    with pytest.warns(DeprecationWarning, match="gateways.slack_testing moved"):
        from gateways.slack_testing import SlackTestServer  # type: ignore[import-not-found]
    assert SlackTestServer is gateways.testing.SlackTestServer


@pytest.mark.parametrize("module", ["gateways", "gateways.mqtt"])
@pytest.mark.parametrize(
    ("old", "new"), [("MQTTGateway", "MqttGateway"), ("MQTTGatewayOptions", "MqttGatewayOptions")]
)
def test_the_old_mqtt_names_warn(module: str, old: str, new: str) -> None:
    package = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{old} is now {new}"):
        value = getattr(package, old)
    assert value is getattr(importlib.import_module("gateways.mqtt"), new)


def test_the_new_names_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from gateways import ConsoleGateway, MqttGateway  # noqa: F401
        from gateways.mqtt import MqttGatewayOptions  # noqa: F401


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        gateways.Nope  # noqa: B018
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("gateways.mqtt_nope")
