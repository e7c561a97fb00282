"""Where llview finds its own sources and keeps its caches."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNTIME_DIR = REPO / "runtime"
AGENTS_DIR = REPO / "agents"
PROTOCOL_DIR = REPO / "protocol"
KERNEL_HEADERS_DIR = REPO / "kernel_headers"


def cache_dir() -> Path:
    """llview's cache: kernel profiles, guest images, built runtime.

    $LLVIEW_HOME wins; otherwise ~/.cache/llview.
    """
    home = os.environ.get("LLVIEW_HOME")
    base = Path(home) if home else Path.home() / ".cache" / "llview"
    base.mkdir(parents=True, exist_ok=True)
    return base


class LlviewError(Exception):
    """An error the user can act on; the CLI prints it as 'llview: error: ...'."""
