"""Starting and stopping the C host agent (agents/host/build/llview-agent) in tests."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST_DIR = REPO / "agents" / "host"
# LLVIEW_TEST_AGENT runs the tests against another build (e.g. one with sanitizers).
AGENT = Path(os.environ.get("LLVIEW_TEST_AGENT", HOST_DIR / "build" / "llview-agent"))
PAGEWALK_LIB = HOST_DIR / "build" / "libllview-pagewalk.so"
READY = re.compile(r"llview-agent ready: .* listening on ([\d.]+):(\d+)")


def build() -> None:
    subprocess.run(["make", "-s", "-C", str(HOST_DIR)], check=True)


def write_key(path: Path) -> bytes:
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class Agent:
    """A running agent on port 0 (the kernel picks a free port); .port once ready."""

    def __init__(self, args: list[str], timeout: float = 60.0):
        self.proc = subprocess.Popen([str(AGENT), "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ready_line = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                m = READY.search(line)
                if m:
                    self.ready_line = line.strip()
                    self.port = int(m.group(2))
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited {self.proc.returncode}: "
                                   f"{self.proc.stderr.read()}")
        self.stop()
        raise RuntimeError("agent did not become ready in time")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> str:
        """Stops the agent (by its pid) and returns its stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err
