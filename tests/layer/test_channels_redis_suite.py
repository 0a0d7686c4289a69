"""channels_redis 4.3's own tests of its core layer, run against ``layer.redis.RedisChannelLayer``.

The pinned source distribution (``CHANNELS_REDIS``, checked against ``SDIST_SHA256``) is
fetched from the package index with ``pip download`` when the test runs (and kept in
pytest's cache directory); nothing of it is copied into this repository. Its
``tests/test_core.py`` and ``setup.cfg`` (the suite's own pytest settings: asyncio mode,
10 s per test) are unpacked to a temporary directory and run with pytest in a subprocess,
unchanged, beside a ``conftest.py`` (``SHIM``) that points them at our layer:

- ``channels_redis.core`` is a module holding our ``RedisChannelLayer`` and our
  ``ChannelFull`` (the error our layer raises), so the suite's
  ``from channels_redis.core import ChannelFull, RedisChannelLayer`` gets ours;
- the suite's Redis, ``redis://localhost:6379`` (its ``TEST_HOSTS``, databases 0 to 9 in
  ``MULTIPLE_TEST_HOSTS``, and the default of a layer built without ``hosts``, which is
  channels_redis's and ours), is the session's redis-server (``redis_url``) instead.

Of its 26 test functions (28 tests: one is parametrised three times), 21 test the layer's
API and must pass, all 23 of their tests. Two are marked ``xfail`` by channels_redis itself
(known failures of channels_redis: ``test_receive_cancel``, and
``test_message_expiry__group_send__one_channel_expires_message``, which expects a message
older than ``expiry`` to arrive); they run, and may fail or pass. Three read channels_redis
internals that are no part of the layer API (``_group_key()``, ``receive_buffer``); they
are deselected.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

CHANNELS_REDIS = "channels-redis==4.3.0"
SDIST = "channels_redis-4.3.0.tar.gz"
SDIST_SHA256 = "740ee7b54f0e28cf2264a940a24453d3f00526a96931f911fcb69228ef245dd2"
"""The SHA-256 of ``SDIST`` as the package index serves it."""

REPO = Path(__file__).resolve().parents[2]

API_TESTS = [
    "test_send_receive",
    "test_double_receive",
    "test_send_capacity",
    "test_send_specific_capacity",
    "test_process_local_send_receive",
    "test_multi_send_receive",
    "test_reject_bad_channel",
    "test_reject_bad_client_prefix",
    "test_groups_basic",
    "test_groups_channel_full",
    "test_groups_multiple_hosts",
    "test_groups_same_prefix",
    "test_groups_multiple_hosts_performance",
    "test_group_send_capacity",
    "test_group_send_capacity_multiple_channels",
    "test_repeated_group_send_with_async_to_sync",
    "test_random_reset__channel_name",
    "test_random_reset__client_prefix",
    "test_message_expiry__earliest_message_expires",
    "test_message_expiry__all_messages_under_expiration_time",
    "test_message_expiry__group_send",
]
"""The suite's tests of the layer API, which must all pass."""
API_TEST_COUNT = len(API_TESTS) + 2  # test_groups_multiple_hosts_performance runs 3 times
CHANNELS_REDIS_XFAIL = [
    "test_receive_cancel",
    "test_message_expiry__group_send__one_channel_expires_message",
]
"""Marked ``xfail`` by channels_redis (its known failures)."""
INTERNALS = {
    "test_default_group_key_format": "calls channels_redis' private _group_key()",
    "test_custom_group_key_format": "calls channels_redis' private _group_key()",
    "test_receive_buffer_respects_capacity": "reads channels_redis' receive_buffer",
}
"""Deselected: they test channels_redis internals, not the layer."""

SHIM = '''"""Points channels_redis' tests/test_core.py at asgi-gateway's Redis channel layer.

Written by asgi-gateway's tests/layer/test_channels_redis_suite.py, which explains why.
"""

import os
import sys
import types

import layer
from layer.redis import RedisChannelLayer as OurRedisChannelLayer

REDIS_URL = os.environ["ASGI_GATEWAY_SUITE_REDIS_URL"]


class RedisChannelLayer(OurRedisChannelLayer):
    """Ours, whose default host is the test's redis-server instead of localhost:6379."""

    def __init__(self, hosts=None, *args, **kwargs):
        super().__init__([REDIS_URL] if hosts is None else hosts, *args, **kwargs)


core = types.ModuleType("channels_redis.core")
core.ChannelFull = layer.ChannelFull
core.RedisChannelLayer = RedisChannelLayer
sys.modules["channels_redis.core"] = core


def pytest_collection_modifyitems(items):
    for item in items:
        module = item.module
        module.TEST_HOSTS = [REDIS_URL]
        module.MULTIPLE_TEST_HOSTS = [f"{REDIS_URL}/{db}" for db in range(10)]
'''


@pytest.fixture
def sdist(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The pinned sdist: from pytest's cache, or downloaded now. Fails if it cannot be had."""
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("channels-redis-sdist") if cache is not None else tmp_path / "sdist"
    path = folder / SDIST
    if not path.is_file() or _sha256(path) != SDIST_SHA256:
        path.unlink(missing_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        command += ["--dest", str(folder), CHANNELS_REDIS]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"pip download {CHANNELS_REDIS} took over {exc.timeout} s")
        if done.returncode != 0 or not path.is_file():
            pytest.fail(
                f"pip download {CHANNELS_REDIS} failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}"
            )
    digest = _sha256(path)
    if digest != SDIST_SHA256:
        pytest.fail(f"{path} has SHA-256 {digest}, not the pinned {SDIST_SHA256}")
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unpack_suite(sdist: Path, into: Path) -> Path:
    """Unpack ``tests/test_core.py`` and ``setup.cfg`` of the sdist; add the shim conftest."""
    top = SDIST.removesuffix(".tar.gz")
    wanted = {f"{top}/tests/test_core.py", f"{top}/setup.cfg"}
    with tarfile.open(sdist) as archive:
        members = [member for member in archive.getmembers() if member.name in wanted]
        assert {member.name for member in members} == wanted, f"{sdist} lacks {wanted}"
        archive.extractall(into, members=members, filter="data")
    root = into / top
    (root / "tests" / "conftest.py").write_text(SHIM)
    return root


@pytest.mark.timeout(600)
def test_channels_redis_core_suite_passes_against_our_layer(
    sdist: Path, tmp_path: Path, redis_url: str
) -> None:
    root = unpack_suite(sdist, tmp_path)
    command = [sys.executable, "-m", "pytest", "-c", "setup.cfg", "--rootdir", "."]
    command += ["-p", "no:cacheprovider", "-q", "-rA", "tests/test_core.py"]
    for name in INTERNALS:
        command += ["--deselect", f"tests/test_core.py::{name}"]
    env = dict(os.environ, ASGI_GATEWAY_SUITE_REDIS_URL=redis_url)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    try:
        done = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=540
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"channels_redis' suite took over {exc.timeout} s:\n{exc.stdout!s}")
    output = done.stdout + done.stderr
    outcomes: dict[str, list[str]] = {}
    for outcome, test in re.findall(r"^(\w+) tests/test_core\.py::(\w+)", output, re.M):
        outcomes.setdefault(outcome, []).append(test)
    passed = outcomes.pop("PASSED", [])
    assert sorted(set(passed)) == sorted(API_TESTS), output
    assert len(passed) == API_TEST_COUNT, output
    assert set(outcomes) <= {"XFAIL", "XPASS"}, output  # nothing failed, errored or skipped
    assert sorted(outcomes.get("XFAIL", []) + outcomes.get("XPASS", [])) == sorted(
        CHANNELS_REDIS_XFAIL
    ), output
    summary = done.stdout.strip().splitlines()[-1]  # "23 passed, 3 deselected, ... in 25s"
    assert re.search(rf"\b{API_TEST_COUNT} passed\b", summary), output
    assert f"{len(INTERNALS)} deselected" in summary, output
    assert done.returncode == 0, output
