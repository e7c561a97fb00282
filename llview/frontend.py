"""The clang front end: the flags that compile C against a kernel profile's headers as Kbuild
would (but for clang and for a user-space PIE), and the clang-19 run that turns an IDS program into
LLVM IR.

Kbuild's own flags are gcc's (clang rejects -fconserve-stack, -mrecord-mcount), so this is a clang
set of our own that keeps what matters for the meaning of the headers: the include order, the
forced includes, __KERNEL__, gnu11, -fshort-wchar and the kernel's aliasing/overflow/null-check
semantics. tests/test_layout.py checks that struct layouts agree with gcc-12's (the kernel's
compiler) under the same flags. Kernel header directories are passed with -isystem so that
clang's warnings about the headers themselves stay quiet and only the IDS's own code is warned
about; errors anywhere still show.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llview.paths import KERNEL_HEADERS_DIR, LlviewError

CLANG = "clang-19"
# Force-included after the kernel's own forced includes: renames kernel functions the runtime
# supplies under other names (see the header).
KERNEL_OVERRIDES_HEADER = KERNEL_HEADERS_DIR / "llview" / "kernel_overrides.h"

# Kernel semantics the headers rely on (see the kernel's top-level Makefile), plus -D__NO_FORTIFY:
# the fortified string.h wrappers call fortify_panic() and friends, which only the kernel has.
_LANGUAGE_FLAGS = [
    "-std=gnu11", "-fno-strict-aliasing", "-fno-common", "-fshort-wchar",
    "-fno-strict-overflow", "-fno-delete-null-pointer-checks",
]
_WARNING_FLAGS = ["-Wall"]
# IR for the passes: optimised (header inline functions already inlined), with line tables so
# that diagnostics and runtime errors can name the IDS source line.
_CODEGEN_FLAGS = ["-O2", "-gline-tables-only", "-fPIE", "-fno-stack-protector"]


class KernelHeaders(Protocol):
    """The two header trees of a kernel profile (llview.kernel.Profile has them)."""

    headers: Path  # linux-headers-<release> (arch-specific, generated files)
    headers_common: Path  # linux-headers-<abi>-common


@functools.cache
def clang_resource_dir() -> Path:
    """clang's own headers (stddef.h, stdarg.h, ...), needed beside -nostdinc."""
    try:
        out = subprocess.run([CLANG, "-print-resource-dir"], capture_output=True, text=True,
                             check=True).stdout.strip()
    except FileNotFoundError:
        raise LlviewError(f"`{CLANG}` is not installed (apt-get install clang-19)") from None
    except subprocess.CalledProcessError as e:
        raise LlviewError(f"`{CLANG} -print-resource-dir` failed: {e.stderr.strip()}") from None
    return Path(out)


def kernel_flags(profile: KernelHeaders, include_dirs: Sequence[str] = (),
                 defines: Sequence[str] = (), arch: str = "x86") -> list[str]:
    """Preprocessor and language flags for C against the profile's headers: shared by the
    clang compile, the libclang diagnostics and `llview layout`, so all three see the same code."""
    common, generated = Path(profile.headers_common), Path(profile.headers)
    for tree in (common, generated):
        if not (tree / "include").is_dir():
            raise LlviewError(f"kernel headers {tree} have no include/ directory")
    flags = ["-nostdinc", "-D__KERNEL__", "-D__NO_FORTIFY",
             "-DKBUILD_MODNAME=\"ids\"", "-DKBUILD_BASENAME=\"ids\""]
    for define in defines:
        flags.append(f"-D{define}")
    for directory in include_dirs:
        flags.append(f"-I{directory}")
    flags.append(f"-I{KERNEL_HEADERS_DIR}")
    for directory in (
        common / f"arch/{arch}/include",
        generated / f"arch/{arch}/include/generated",
        common / "include",
        generated / "include",
        common / f"arch/{arch}/include/uapi",
        generated / f"arch/{arch}/include/generated/uapi",
        common / "include/uapi",
        generated / "include/generated/uapi",
        clang_resource_dir() / "include",
    ):
        flags += ["-isystem", str(directory)]
    for forced in ("compiler-version.h", "kconfig.h", "compiler_types.h"):
        flags += ["-include", str(common / "include/linux" / forced)]
    flags += ["-include", str(KERNEL_OVERRIDES_HEADER)]
    return flags + _LANGUAGE_FLAGS + _makefile_language_flags(common / "Makefile")


@functools.cache
def _makefile_language_flags(makefile: Path) -> list[str]:
    """Kernel-version-dependent C semantics from the top-level Makefile: Linux 6.2 made plain
    char unsigned on every architecture (-funsigned-char); older kernels leave it signed."""
    try:
        text = makefile.read_text(errors="replace")
    except OSError:
        return []
    found = re.search(r"^[^#\n]*-funsigned-char\b", text, re.M)  # in KBUILD_CFLAGS's lines
    return ["-funsigned-char"] if found else []


@dataclass
class ClangRun:
    """A clang-19 process compiling one file to IR, started so other work can overlap it."""

    source: Path
    process: subprocess.Popen[bytes]

    def finish(self) -> tuple[str | None, str]:
        """(IR text or None when clang failed, clang's diagnostics exactly as it printed them)."""
        out, err = self.process.communicate()
        diagnostics = err.decode(errors="replace")
        if self.process.returncode != 0:
            return None, diagnostics
        return out.decode(), diagnostics

    def cancel(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_compile_to_ir(source: Path, flags: Sequence[str]) -> ClangRun:
    """Starts `clang-19 FLAGS -O2 -S -emit-llvm SOURCE -o -`; call .finish() for the result."""
    color = ["-fcolor-diagnostics"] if sys.stderr.isatty() else []
    cmd = [CLANG, *flags, *_WARNING_FLAGS, *_CODEGEN_FLAGS, *color,
           "-S", "-emit-llvm", "-o", "-", "-x", "c", str(source)]
    try:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise LlviewError(f"`{CLANG}` is not installed (apt-get install clang-19)") from None
    return ClangRun(source, process)


def called_external_functions(ir_text: str) -> set[str]:
    """Names of the functions the IR declares but does not define: what optimised code still
    calls (clang emits declarations only for functions that are used)."""
    names = set()
    for line in ir_text.splitlines():
        if line.startswith("declare "):
            at = line.find("@")
            end = line.find("(", at)
            if at > 0 and end > at:
                names.add(line[at + 1:end].strip('"'))
    return names
