"""Hostile-input property tests: hypothesis profiles, and the log check every test uses.

Profiles (``settings.get_profile(PROFILE)`` in each test; nothing is loaded globally, so the
rest of the suite keeps hypothesis' defaults):

- ``hostile`` (the default, CI): ``derandomize=True``, so every run tries the same inputs and
  a failure in CI reproduces on any machine; no example database (nothing written to the
  tree); ``deadline=None`` (no timing assertions: the machine is shared).
- ``hostile-explore``: random inputs, five times as many, for a local hunt
  (``HOSTILE_PROFILE=hostile-explore python -m pytest tests/hostile``).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "hostile",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "hostile-explore",
    settings.get_profile("hostile"),
    derandomize=False,
)
