"""Starting and stopping the C host agent (agents/host/build/llview-agent) in tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from llview.agent_cli import AgentProcess

REPO = Path(__file__).resolve().parents[2]
HOST_DIR = REPO / "agents" / "host"
# LLVIEW_TEST_AGENT runs the tests against another build (e.g. one with sanitizers).
AGENT = Path(os.environ.get("LLVIEW_TEST_AGENT", HOST_DIR / "build" / "llview-agent"))
PAGEWALK_LIB = HOST_DIR / "build" / "libllview-pagewalk.so"


def build() -> None:
    subprocess.run(["make", "-s", "-C", str(HOST_DIR)], check=True)


def write_key(path: Path) -> bytes:
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class Agent(AgentProcess):
    """The product's background agent, run from AGENT (which tests may override)."""

    def __init__(self, args: list[str], timeout: float = 60.0):
        super().__init__(args, binary=AGENT, timeout=timeout)
