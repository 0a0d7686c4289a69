"""Hostile YAML: any text fed to the config loader is a configuration or a ``ConfigError``,
never another exception; a YAML tag builds nothing; the CLI's ``check`` exits 0 or 2 with no
traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hostile_helpers import hostile_settings
from hypothesis import example, given
from hypothesis import strategies as st

from config import ConfigError, load_config_text

BASE = "application: app:application\ngateways:\n  chat: {type: console}\n"

#: Keys of the real file, so generated documents reach the models, not only the parser.
KEYS = st.sampled_from(
    ["application", "gateways", "layer", "logging", "access", "monitoring", "workers", "x"]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True),
    st.text(max_size=30),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


def load(text: str) -> None:
    """Load ``text``: a configuration, or a ``ConfigError`` naming the file."""
    problem = ""
    try:
        load_config_text(text, filename="gateway.yaml", environ={})
    except ConfigError as error:
        problem = str(error)
    assert not problem or problem.startswith("gateway.yaml")


@hostile_settings(300)
@given(st.text(max_size=400))
@example("a: &x [*x]\n")  # a recursive alias
@example("a: !!python/object/apply:os.system ['echo pwned']\n")
@example("a: 1\na: 2\n")  # a duplicate key
@example("access:\n  rules: [{allow: ['*'], deny: ['*']}]\n" + BASE)
@example("\x00\ufeff\u202e: [")
def test_any_text_is_a_configuration_or_a_config_error(text: str) -> None:
    load(text)


@hostile_settings(200)
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_documents_of_the_real_keys_with_wrong_values_are_config_errors(doc: dict) -> None:
    import json

    load(json.dumps(doc))  # JSON is YAML: every shape of value reaches the models


def test_a_python_tag_builds_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"application: !!python/object/apply:os.system ['touch {marker}']\n" + BASE[30:]
    load(text)
    assert not marker.exists()


@hostile_settings(15)
@given(st.text(max_size=200))
@example("gateways: {a: {type: mqtt, port: [}}")
def test_check_exits_0_or_2_without_a_traceback(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("yaml") / "gateway.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = subprocess.run(
        [sys.executable, "-m", "gateways", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in (0, 2), result.stderr
    assert "Traceback" not in result.stderr
