"""The C runtime as the compiler sees it: built on demand with make, and the list of symbols it
defines (the one source of truth for what an IDS may call besides its own functions)."""

import functools
import subprocess
from pathlib import Path

from llview.paths import RUNTIME_DIR, LlviewError

RUNTIME_BUILD_DIR = RUNTIME_DIR / "build"
RUNTIME_ARCHIVE = RUNTIME_BUILD_DIR / "libllview_rt.a"
FASTPATH_IR = RUNTIME_BUILD_DIR / "fastpath.ll"
LLVM_NM = "llvm-nm-19"


def ensure_runtime() -> Path:
    """Runs `make -s -C runtime` (a no-op when up to date) and returns the build directory."""
    if not (RUNTIME_DIR / "Makefile").is_file():
        raise LlviewError(f"{RUNTIME_DIR}/Makefile is missing: the runtime sources are incomplete")
    try:
        done = subprocess.run(["make", "-s", "-C", str(RUNTIME_DIR)],
                              capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise LlviewError("`make` is not installed (needed to build the runtime)") from None
    if done.returncode != 0:
        output = (done.stderr + done.stdout).strip()
        raise LlviewError(f"building the runtime failed (make -C {RUNTIME_DIR}):\n{output}")
    for product in (RUNTIME_ARCHIVE, FASTPATH_IR):
        if not product.is_file():
            raise LlviewError(f"building the runtime did not produce {product}")
    return RUNTIME_BUILD_DIR


@functools.cache
def _defined_symbols(archive: Path, mtime_ns: int) -> frozenset[str]:
    try:
        done = subprocess.run([LLVM_NM, "--defined-only", "--extern-only", "--format=just-symbols",
                               str(archive)], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise LlviewError(f"`{LLVM_NM}` is not installed (apt-get install llvm-19)") from None
    if done.returncode != 0:
        raise LlviewError(f"{LLVM_NM} {archive} failed: {done.stderr.strip()}")
    # just-symbols output: one name per line, plus "file.o:" headers for archive members.
    return frozenset(line for line in done.stdout.split()
                     if line and not line.endswith(":"))


def supplied_symbols() -> set[str]:
    """Global symbols the runtime defines (llvm-nm --defined-only --extern-only on the archive)."""
    ensure_runtime()
    return set(_defined_symbols(RUNTIME_ARCHIVE, RUNTIME_ARCHIVE.stat().st_mtime_ns))
