"""``asgi-gateway run --reload``: the daemon in a child process, restarted on every edit.

The parent process never imports the application. It runs ``python -m gateways run FILE``
(the same options, without ``--reload``) as a child, watches with watchfiles (as uvicorn's
reloader does) the YAML file and every Python file under the YAML file's folder and the
application module's folder, and on a change stops the child (SIGTERM: it drains as on any
stop) and starts a new one, logging which files changed. A child that fails to start (a
syntax error in the file just saved) prints its error and exits; the parent logs that and
waits for the next edit.

SIGINT or SIGTERM to the parent is forwarded once to the child, which stops gracefully; the
parent then exits with the child's exit code. A second signal is forwarded as well (the
daemon then stops without draining). The child runs in its own process group, so Ctrl-C in a
terminal reaches the parent only and the child sees a single signal.
"""

from __future__ import annotations

import importlib.machinery
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

import watchfiles

from config import ConfigError, load_config, split_import_path

__all__ = ["Reloader", "watch_paths"]

logger = logging.getLogger(__name__)

#: Seconds a child gets beyond the file's ``shutdown_timeout`` to exit before it is killed.
STOP_MARGIN = 10.0
#: Milliseconds between checks of the child while no file changes.
_POLL_MS = 500


def _application_folder(application: str, search: list[str]) -> Path | None:
    """The folder of the application's top-level module or package, found without importing
    anything; ``None`` for an installed module (under ``sys.prefix``) or one not found."""
    module, _ = split_import_path(application)
    spec = importlib.machinery.PathFinder.find_spec(module.partition(".")[0], search)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
    elif spec.origin is not None:
        folder = Path(spec.origin).parent
    else:
        return None
    folder = folder.resolve()
    installed = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    if any(folder.is_relative_to(prefix) for prefix in installed):
        return None
    return folder


def watch_paths(config_file: Path) -> list[Path]:
    """The folders ``--reload`` watches for ``config_file``.

    Args:
        config_file: The daemon's YAML file.

    Returns:
        The YAML file's folder, and the application module's folder (its package's folder
        for ``package.module:attr``) when it is elsewhere and not an installed library. While
        the file does not load, only its folder.
    """
    here = config_file.resolve().parent
    folders = [here]
    try:
        application = load_config(config_file).application
    except ConfigError:
        return folders
    # The child's import path (gateways.daemon.cli puts the current and the file's folder first).
    found = _application_folder(application, [os.getcwd(), str(here), *sys.path])
    if found is not None and not any(found.is_relative_to(f) for f in folders):
        folders.append(found)
    return folders


class _ReloadFilter(watchfiles.PythonFilter):
    """Python files (watchfiles' rules: no ``__pycache__``, ``.git``, ``.venv``...) and the
    YAML file itself."""

    def __init__(self, config_file: Path) -> None:
        super().__init__()
        self._config_file = str(config_file.resolve())

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        return path == self._config_file or super().__call__(change, path)


class Reloader:
    """Run ``python -m gateways <args>`` in a child and restart it when a watched file changes.

    Args:
        config_file: The daemon's YAML file (it and the application's folder are watched).
        args: The child's command line after ``python -m gateways``, e.g.
            ``["run", "gateway.yaml", "--log-format", "json"]``.
        stop_timeout: Seconds to wait for a stopping child before killing it; by default the
            file's ``shutdown_timeout`` plus 10.
    """

    def __init__(
        self, config_file: Path, args: list[str], stop_timeout: float | None = None
    ) -> None:
        self.config_file = config_file
        self.args = args
        self.stop_timeout = stop_timeout
        self._child: subprocess.Popen[bytes] | None = None
        self._reported_exit = False
        self._stop = threading.Event()
        self._signal: int | None = None

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM; installs handlers for both (main thread only).

        Returns:
            The child's exit code after the forwarded signal, or 0 if no child was running.
        """
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        self._start()
        watch_filter = _ReloadFilter(self.config_file)
        while not self._stop.is_set():
            paths = watch_paths(self.config_file)
            logger.info("Reload: watching %s", ", ".join(map(str, paths)))
            for changes in watchfiles.watch(
                *paths,
                watch_filter=watch_filter,
                stop_event=self._stop,
                rust_timeout=_POLL_MS,
                yield_on_timeout=True,
                raise_interrupt=False,
            ):
                self._check_child()
                if not changes or self._stop.is_set():
                    continue
                changed = ", ".join(sorted({self._shown(path) for _, path in changes}))
                logger.info("Reload: %s changed; restarting the daemon", changed)
                self._stop_child(signal.SIGTERM)
                self._start()
                if watch_paths(self.config_file) != paths:  # `application:` moved
                    break
        return self._stop_child(self._signal or signal.SIGTERM)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop.is_set():  # a second signal: the daemon stops without draining
            if self._child is not None and self._child.poll() is None:
                self._child.send_signal(signum)
            return
        self._signal = signum
        self._stop.set()

    def _start(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "gateways", *self.args], process_group=0
        )
        self._reported_exit = False
        logger.info("Reload: started the daemon, pid %d", self._child.pid)

    def _check_child(self) -> None:
        child = self._child
        if child is None or self._reported_exit or child.poll() is None:
            return
        self._reported_exit = True
        logger.error(
            "Reload: the daemon exited with code %d; waiting for a change to restart it",
            child.returncode,
        )

    def _stop_child(self, signum: int) -> int:
        child, self._child = self._child, None
        if child is None or child.poll() is not None:
            return 0
        child.send_signal(signum)
        timeout = self._stop_timeout()
        try:
            return child.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("Reload: the daemon did not stop within %.1f s; killing it", timeout)
            child.kill()
            return child.wait()

    def _stop_timeout(self) -> float:
        if self.stop_timeout is not None:
            return self.stop_timeout
        try:
            return load_config(self.config_file).shutdown_timeout + STOP_MARGIN
        except ConfigError:
            return 10.0 + STOP_MARGIN

    @staticmethod
    def _shown(path: str) -> str:
        try:
            return str(Path(path).relative_to(Path.cwd()))
        except ValueError:
            return path
