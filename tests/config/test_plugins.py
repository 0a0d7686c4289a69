"""``config.plugins``: plug-ins by entry point or import path, and the options a class takes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeGuard

import pytest

from config import ConfigError, PluginEntry, PluginRegistry, accepted_options

GROUP = "asgi_gateway_tests.widgets"

PLUGIN_MODULE = """
class Widget:
    def __init__(self, size: int = 1, *, colour: str = "red") -> None:
        self.size = size

class OtherWidget(Widget):
    pass

NotAClass = 42
"""


class WidgetError(Exception):
    """The error the test registry raises."""


def is_class(obj: object) -> TypeGuard[type[Any]]:
    return isinstance(obj, type)


def make_registry(error: type[Exception] = WidgetError) -> PluginRegistry[type[Any]]:
    return PluginRegistry(
        group=GROUP,
        kind="widget kind",
        key="kind",
        example="package.module:MyWidget",
        error=error,
        check=is_class,
        expected="a class",
        builtins={"basic": "fake_widgets:Widget", "needy": "needy_widgets:Widget"},
        extras={"needy": "needs"},
        distribution="widget-core",
    )


def install_distribution(site: Path, dist: str, entries: dict[str, str]) -> None:
    """Lay out a distribution on ``site`` as pip would: its dist-info, metadata and entry
    points (importlib.metadata reads exactly these files)."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {value}" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path holding ``fake_widgets`` and ``needy_widgets`` (which imports a
    library that is not installed)."""
    (tmp_path / "fake_widgets.py").write_text(PLUGIN_MODULE)
    (tmp_path / "needy_widgets.py").write_text("import no_such_library_for_asgi_gateway\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in ("fake_widgets", "needy_widgets"):
        sys.modules.pop(module, None)


def test_an_installed_plugin_resolves_by_its_entry_point_name(site: Path) -> None:
    install_distribution(site, "fancy-widgets", {"fancy": "fake_widgets:OtherWidget"})
    registry = make_registry()
    (entry,) = registry.installed()["fancy"]
    assert (entry.name, entry.value, entry.distribution) == (
        "fancy",
        "fake_widgets:OtherWidget",
        "fancy-widgets 1.0",
    )
    assert entry.load().__name__ == "OtherWidget"
    assert registry.resolve("fancy").__name__ == "OtherWidget"


def test_without_our_entry_points_the_builtins_are_added(site: Path) -> None:
    registry = make_registry()
    installed = registry.installed([])
    assert {name: [e.value for e in entries] for name, entries in installed.items()} == {
        "basic": ["fake_widgets:Widget"],
        "needy": ["needy_widgets:Widget"],
    }
    assert installed["basic"][0].distribution == "widget-core (not installed)"
    assert registry.resolve("basic", installed).__name__ == "Widget"


def test_with_our_entry_points_installed_the_builtins_are_not_added(site: Path) -> None:
    install_distribution(site, "widget-core", {"core": "fake_widgets:Widget"})
    installed = make_registry().installed()
    assert sorted(installed) == ["core"]
    assert installed["core"][0].distribution == "widget-core 1.0"


def test_entries_are_given_explicitly_or_read_from_the_group(site: Path) -> None:
    install_distribution(site, "fancy-widgets", {"fancy": "fake_widgets:OtherWidget"})
    registry = make_registry()
    assert registry.installed(entry_points(group=GROUP)) == registry.installed()


def test_entries_compare_by_name_value_and_distribution_only() -> None:
    one = PluginEntry("a", "m:A", "d 1.0", registry=make_registry())
    other = PluginEntry("a", "m:A", "d 1.0", registry=make_registry())
    assert one == other
    assert hash(one) == hash(other)
    assert "registry" not in repr(one)


def test_two_distributions_claiming_one_name_is_an_error_naming_both(site: Path) -> None:
    install_distribution(site, "fancy-widgets", {"fancy": "fake_widgets:Widget"})
    install_distribution(site, "other-widgets", {"fancy": "fake_widgets:OtherWidget"})
    with pytest.raises(WidgetError) as caught:
        make_registry().resolve("fancy")
    assert str(caught.value) == (
        "widget kind 'fancy' is claimed by more than one installed distribution: "
        "fancy-widgets 1.0 (fake_widgets:Widget), other-widgets 1.0 (fake_widgets:OtherWidget); "
        "uninstall one, or use the import path of the one you mean as the kind"
    )


def test_one_distribution_seen_twice_is_one_claim(site: Path) -> None:
    install_distribution(site, "fancy-widgets", {"fancy": "fake_widgets:Widget"})
    (entry,) = entry_points(group=GROUP)
    assert len(make_registry().installed([entry, entry])["fancy"]) == 1


def test_an_unknown_name_lists_what_is_installed(site: Path) -> None:
    registry = make_registry()
    with pytest.raises(WidgetError) as caught:
        registry.resolve("fancy", registry.installed([]))
    assert str(caught.value) == (
        "unknown widget kind 'fancy'; installed: basic, needy, "
        "or an import path such as 'package.module:MyWidget'"
    )


def test_an_import_path_resolves(site: Path) -> None:
    assert make_registry().resolve("fake_widgets:OtherWidget").__name__ == "OtherWidget"
    assert make_registry().resolve("fake_widgets.Widget").__name__ == "Widget"


def test_an_object_that_fails_the_check_is_refused(site: Path) -> None:
    install_distribution(site, "fancy-widgets", {"fancy": "fake_widgets:NotAClass"})
    registry = make_registry()
    with pytest.raises(
        WidgetError, match=r"^widget kind 'fancy' \(from fancy-widgets 1\.0\) is 42"
    ):
        registry.resolve("fancy")
    with pytest.raises(WidgetError, match=r"^widget kind 'fake_widgets:NotAClass' is 42, not a"):
        registry.resolve("fake_widgets:NotAClass")


def test_a_missing_library_of_a_builtin_names_the_extra_to_install(site: Path) -> None:
    registry = make_registry()
    (needy,) = registry.installed([])["needy"]
    with pytest.raises(WidgetError) as caught:
        needy.load()
    assert str(caught.value) == (
        "widget kind 'needy' (from widget-core (not installed)) cannot be imported: "
        "No module named 'no_such_library_for_asgi_gateway'; pip install 'widget-core[needs]'"
    )
    assert isinstance(caught.value.__cause__, ImportError)


def test_a_missing_library_of_another_distribution_names_no_extra(site: Path) -> None:
    install_distribution(site, "needy-widgets", {"wanting": "needy_widgets:Widget"})
    with pytest.raises(WidgetError) as caught:
        make_registry().resolve("wanting")
    assert str(caught.value) == (
        "widget kind 'wanting' (from needy-widgets 1.0) cannot be imported: "
        "No module named 'no_such_library_for_asgi_gateway'"
    )


def test_a_missing_library_behind_an_import_path_is_the_registry_error(site: Path) -> None:
    with pytest.raises(WidgetError) as caught:
        make_registry().resolve("needy_widgets:Widget")
    assert str(caught.value) == (
        "widget kind 'needy_widgets:Widget' cannot be imported: "
        "No module named 'no_such_library_for_asgi_gateway'"
    )


def test_a_path_that_does_not_resolve_is_wrapped_in_the_registry_error(site: Path) -> None:
    install_distribution(site, "fancy-widgets", {"fancy": "fake_widgets:Missing"})
    with pytest.raises(
        WidgetError, match=r"^widget kind 'fancy' \(.*\) does not resolve: "
    ) as caught:
        make_registry().resolve("fancy")
    assert isinstance(caught.value.__cause__, ConfigError)
    with pytest.raises(WidgetError, match=r"^widget kind 'no_such_module:W' does not resolve: "):
        make_registry().resolve("no_such_module:W")


def test_a_config_error_registry_raises_the_import_error_itself(site: Path) -> None:
    """With ``error=ConfigError`` (the gateways'), ``import_from_string``'s own error, a
    ``ConfigError`` already, is raised unchanged."""
    with pytest.raises(ConfigError, match=r"^could not import module 'no_such_module'"):
        make_registry(ConfigError).resolve("no_such_module:W")


class Keywords:
    def __init__(self, size: int, /, colour: str = "red", *, shape: str = "round") -> None:
        pass


class AnyKeywords:
    def __init__(self, size: int = 1, **options: Any) -> None:
        pass


def keywords(a: int, b: int = 2, *args: int, c: int = 3) -> None:
    pass


@pytest.mark.parametrize(
    ("target", "accepted"),
    [
        (Keywords, ("colour", "shape")),  # neither self nor a positional-only parameter
        (keywords, ("a", "b", "c")),
        (AnyKeywords, None),  # **kwargs: any name may be right
        (dict, None),  # no signature to inspect
        (len, ()),  # positional only
    ],
)
def test_accepted_options_are_the_keyword_parameters(
    target: Any, accepted: tuple[str, ...] | None
) -> None:
    assert accepted_options(target) == accepted
