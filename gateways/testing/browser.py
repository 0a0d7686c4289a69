"""A real browser for tests of web pages: headless Chromium from Debian's ``chromium``
package, driven by Playwright (the ``playwright`` package from PyPI, without the browsers
it would download: Playwright starts the Chromium at ``executable_path``).

``async with chromium() as browser:`` gives a Playwright ``Browser``; each test opens its own
context (``await browser.new_context()``), which has its own cookies and storage, so a page
reload keeps what the page stored and another context starts fresh. ``PageWatch`` records
what a page did that a test must see did not happen: dialogs (``alert()``), console errors
and uncaught exceptions.

Chromium starts with ``--no-sandbox`` (it refuses to run as root otherwise, as in CI) and
without its background networking, which a machine with no way out would refuse, connection
by connection (``--disable-background-networking``, ``--disable-component-update``,
``--disable-sync``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["CHROMIUM_ARGS", "PageWatch", "chromium", "chromium_path"]

#: Command-line switches of the headless Chromium the tests start.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    """The Chromium binary: ``$CHROMIUM`` if set, else ``chromium`` on the ``PATH`` (Debian's
    package installs ``/usr/bin/chromium``).

    Raises:
        FileNotFoundError: No Chromium is installed (``apt-get install chromium``).
    """
    configured = os.environ.get("CHROMIUM")
    found = configured or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise FileNotFoundError(
            "no Chromium: install Debian's chromium package (apt-get install chromium) "
            "or set CHROMIUM to its binary"
        )
    return found


@asynccontextmanager
async def chromium(*, start_within: float = 30.0) -> AsyncIterator[Any]:
    """A headless Chromium for the block's duration, with a fresh profile.

    Args:
        start_within: Seconds Chromium may take to start.

    Yields:
        A ``playwright.async_api.Browser``.

    Raises:
        FileNotFoundError: No Chromium is installed (see ``chromium_path``).
        ImportError: The ``playwright`` package is not installed.
    """
    from playwright.async_api import async_playwright

    executable = chromium_path()
    async with async_playwright() as playwright:
        # Playwright gives the browser a fresh profile of its own, removed on close.
        browser = await playwright.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_ARGS), timeout=start_within * 1000
        )
        try:
            yield browser
        finally:
            await browser.close()


class PageWatch:
    """What a Playwright ``Page`` did that a page must not do: dialogs opened (each is
    dismissed), console messages of type ``error``, and uncaught exceptions.

    Args:
        page: The page to watch, before it loads anything.

    Attributes:
        dialogs: The message of each dialog (``alert``, ``confirm``, ``prompt``).
        console_errors: The text of each console error.
        page_errors: The message of each uncaught exception.
    """

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    @property
    def clean(self) -> bool:
        """Whether nothing of the above happened."""
        return not (self.dialogs or self.console_errors or self.page_errors)

    def __repr__(self) -> str:
        return (
            f"PageWatch(dialogs={self.dialogs!r}, console_errors={self.console_errors!r}, "
            f"page_errors={self.page_errors!r})"
        )
