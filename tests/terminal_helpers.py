"""Reading what a terminal program prints: a pseudo-terminal's master side or a pipe."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Reader:
    """What a file descriptor (a pseudo-terminal's master, a pipe) carries, cleaned of
    carriage returns and terminal escapes; ``expect`` fails the test after ``timeout`` s."""

    def __init__(self, fd: int, process: subprocess.Popen[bytes], stderr: Path) -> None:
        self.fd = fd
        self.process = process
        self.stderr = stderr
        self.raw = b""
        self.seen = 0

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw.decode(errors="replace")).replace("\r", "")

    def expect(self, wanted: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while (found := self.text.find(wanted, self.seen)) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(
                    f"{wanted!r} not printed within {timeout} s; output:\n{self.text}\n"
                    f"stderr:\n{self.stderr.read_text(errors='replace')}"
                )
            ready, _, _ = select.select([self.fd], [], [], min(remaining, 0.5))
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: the terminal's other side is closed
                    chunk = b""
                if not chunk:
                    pytest.fail(f"output ended before {wanted!r}; output:\n{self.text}")
                self.raw += chunk
        self.seen = found + len(wanted)
