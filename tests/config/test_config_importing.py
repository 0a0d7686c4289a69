"""import_from_string: both forms, and a clear error for every bad one."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import (
    ConfigError,
    ImportFromStringError,
    import_from_string,
    load_config_text,
    split_import_path,
)

PACKAGE = "cfg_import_probe"


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package ``cfg_import_probe`` on sys.path with a few tiny modules."""
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(
        textwrap.dedent(
            """\
            async def application(scope, receive, send):
                pass

            class Settings:
                class Inner:
                    value = 42
            """
        )
    )
    (package / "broken_import.py").write_text("import cfg_import_probe_missing_dependency\n")
    (package / "raises.py").write_text("raise ImportError('the database driver is not built')\n")
    (package / "syntax.py").write_text("def (:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [name for name in sys.modules if name.startswith(PACKAGE)]:
        del sys.modules[name]


def test_colon_form(modules: Path) -> None:
    application = import_from_string(f"{PACKAGE}.app:application")
    assert application is sys.modules[f"{PACKAGE}.app"].application


def test_colon_form_with_dotted_attribute(modules: Path) -> None:
    assert import_from_string(f"{PACKAGE}.app:Settings.Inner.value") == 42


def test_channels_dotted_form(modules: Path) -> None:
    settings = import_from_string(f"{PACKAGE}.app.Settings")
    assert settings is sys.modules[f"{PACKAGE}.app"].Settings


def test_standard_library_objects() -> None:
    import collections

    assert import_from_string("collections:OrderedDict") is collections.OrderedDict
    assert import_from_string("collections.OrderedDict") is collections.OrderedDict


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "import path '' is empty"),
        ("   ", "import path '   ' is empty"),
        ("application", "import path 'application' names no module"),
        (":application", "import path ':application' names no module"),
        (".application", "import path '.application' names no module"),
        ("module:", "import path 'module:' names no attribute"),
        ("module.", "import path 'module.' names no attribute"),
        ("a:b:c", "import path 'a:b:c' has more than one ':'"),
        ("my-site.asgi:app", "'my-site.asgi' is not a valid module name"),
        ("site..asgi:app", "'site..asgi' is not a valid module name"),
        ("site.asgi:app..x", "'app..x' is not a valid attribute name"),
    ],
)
def test_malformed_paths(path: str, problem: str) -> None:
    with pytest.raises(ImportFromStringError) as info:
        import_from_string(path)
    assert problem in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_split_import_path() -> None:
    assert split_import_path("pkg.mod:obj.attr") == ("pkg.mod", "obj.attr")
    assert split_import_path("pkg.mod.Class") == ("pkg.mod", "Class")


def test_module_not_found(modules: Path) -> None:
    with pytest.raises(ImportFromStringError) as info:
        import_from_string(f"{PACKAGE}.nope:application")
    assert str(info.value) == (
        f"could not import module '{PACKAGE}.nope' (from '{PACKAGE}.nope:application'): "
        f"no module named '{PACKAGE}.nope'"
    )


def test_package_above_the_module_not_found() -> None:
    with pytest.raises(ImportFromStringError, match="no module named 'cfg_no_such_package'"):
        import_from_string("cfg_no_such_package.app:application")


def test_attribute_not_found(modules: Path) -> None:
    with pytest.raises(ImportFromStringError) as info:
        import_from_string(f"{PACKAGE}.app:aplication")
    assert str(info.value) == f"Attribute 'aplication' not found in module '{PACKAGE}.app'"


def test_dotted_attribute_not_found_names_the_missing_part(modules: Path) -> None:
    with pytest.raises(ImportFromStringError) as info:
        import_from_string(f"{PACKAGE}.app:Settings.Outer.value")
    assert str(info.value) == (
        f"Attribute 'Settings.Outer.value' not found in module '{PACKAGE}.app' (no 'Outer')"
    )


def test_missing_dependency_inside_the_module_propagates_as_is(modules: Path) -> None:
    with pytest.raises(ModuleNotFoundError) as info:
        import_from_string(f"{PACKAGE}.broken_import:application")
    assert type(info.value) is ModuleNotFoundError  # not wrapped in a ConfigError
    assert info.value.name == "cfg_import_probe_missing_dependency"


def test_import_error_raised_by_the_module_propagates_as_is(modules: Path) -> None:
    with pytest.raises(ImportError, match="the database driver is not built"):
        import_from_string(f"{PACKAGE}.raises:application")


def test_syntax_error_in_the_module_propagates(modules: Path) -> None:
    with pytest.raises(SyntaxError):
        import_from_string(f"{PACKAGE}.syntax:application")


def test_config_import_object_locates_the_error(modules: Path) -> None:
    config = load_config_text(
        f"application: {PACKAGE}.app:aplication\n"
        "layer:\n  type: cfg_no_such_package.Layer\n"
        "gateways:\n  g: {type: mqtt}\n",
        "gateway.yaml",
        environ={},
    )
    with pytest.raises(ImportFromStringError) as info:
        config.import_object(("application",))
    assert (info.value.path, info.value.line) == (("application",), 1)
    assert str(info.value) == (
        f"gateway.yaml:1: application: Attribute 'aplication' not found in module '{PACKAGE}.app'"
    )
    with pytest.raises(ImportFromStringError) as info:
        config.import_object(("layer", "type"))
    assert (info.value.path, info.value.line) == (("layer", "type"), 3)


def test_config_import_object_returns_the_object(modules: Path) -> None:
    config = load_config_text(
        f"application: {PACKAGE}.app:application\ngateways:\n  g: {{type: mqtt}}\n", environ={}
    )
    assert config.import_object(("application",)) is sys.modules[f"{PACKAGE}.app"].application
