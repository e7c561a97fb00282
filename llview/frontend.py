"""The clang front end: the flags that compile C against a kernel profile's headers as Kbuild
would (but for clang and for a user-space PIE), and the clang-19 run that turns an IDS program into
LLVM IR.

Kbuild's own flags are gcc's (clang rejects -fconserve-stack, -mrecord-mcount), so this is a clang
set of our own that keeps what matters for the meaning of the headers: the include order, the
forced includes, __KERNEL__, gnu11, -fshort-wchar and the kernel's aliasing/overflow/null-check
semantics. tests/test_layout.py checks that struct layouts agree with gcc-12's (the kernel's
compiler) under the same flags. Kernel header directories are passed with -isystem so that
clang's warnings about the headers themselves stay quiet and only the IDS's own code is warned
about; errors anywhere still show. The headers an IDS starts by including are compiled once into
a precompiled preamble (PCH) in the cache, which clang and libclang then both load.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llview.paths import KERNEL_HEADERS_DIR, LlviewError, cache_dir

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
    # CC_USING_FENTRY: the kernel's Makefile defines it for its -mfentry builds (every x86-64
    # kernel with ftrace); asm/ftrace.h refuses to compile without it.
    flags = ["-nostdinc", "-D__KERNEL__", "-D__NO_FORTIFY", "-DCC_USING_FENTRY",
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


def compile_flags(flags: Sequence[str]) -> list[str]:
    """kernel_flags(...) plus warnings and code generation: what the IR compile, the libclang
    parse and the precompiled preamble are all given, so that they agree."""
    return [*flags, *_WARNING_FLAGS, *_CODEGEN_FLAGS]


def start_compile_to_ir(source: Path, flags: Sequence[str], pch: Sequence[str] = ()) -> ClangRun:
    """Starts `clang-19 FLAGS -O2 ... -S -emit-llvm SOURCE -o -` (FLAGS from kernel_flags, pch
    from precompiled_preamble); call .finish() for the result."""
    color = ["-fcolor-diagnostics"] if sys.stderr.isatty() else []
    cmd = [CLANG, *compile_flags(flags), *pch, *color,
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


# ---- precompiled preamble ----------------------------------------------------------------------
# Parsing the kernel headers is most of a build (twice: clang and libclang). The run of
# `#include <...>` lines an IDS starts with is compiled once into a PCH, kept in the cache under
# a key of everything that can change its meaning, and reused by both: compiling a PCH-covered
# prefix and then the rest of the file is the same as compiling the file.

_PREAMBLE_INCLUDE = re.compile(r"^\s*#\s*include\s*<[^>\n]+>")
_PCH_KEEP = 32  # newest precompiled preambles kept in the cache


def preamble_includes(text: str) -> list[str]:
    """The `#include <...>` lines before the first line that is anything else (blank lines and
    comments aside)."""
    includes: list[str] = []
    in_comment = False
    for line in text.splitlines():
        rest = line.strip()
        while rest:
            if in_comment:
                end = rest.find("*/")
                if end < 0:
                    rest = ""
                    break
                in_comment, rest = False, rest[end + 2:].strip()
            elif rest.startswith("//"):
                rest = ""
            elif rest.startswith("/*"):
                in_comment, rest = True, rest[2:]
            else:
                break
        if not rest:
            continue
        match = _PREAMBLE_INCLUDE.match(rest)
        trailing = rest[match.end():].strip() if match else ""
        if not match or (trailing and not trailing.startswith(("//", "/*"))) or \
                (trailing.startswith("/*") and not trailing.endswith("*/")):
            break
        includes.append(match.group(0).strip())
    return includes


def _pch_key(flags: Sequence[str], includes: list[str], profile: KernelHeaders) -> str:
    clang = Path(shutil.which(CLANG) or CLANG).resolve()
    stamps = [str(p.stat().st_mtime_ns) for p in sorted(KERNEL_HEADERS_DIR.rglob("*.h"))]
    autoconf = Path(profile.headers) / "include/generated/autoconf.h"
    for path in (clang, autoconf):
        stamps.append(str(path.stat().st_mtime_ns) if path.exists() else "-")
    material = json.dumps([str(clang), stamps, list(flags), includes])
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def precompiled_preamble(source_text: str, flags: Sequence[str], profile: KernelHeaders,
                         cacheable: bool = True) -> list[str]:
    """["-include-pch", PCH] for the source's include preamble (built on first use), or [] when
    there is none or it does not compile on its own (the real compile then reports why).
    flags: from kernel_flags."""
    includes = preamble_includes(source_text)
    if not includes or not cacheable:
        return []
    directory = cache_dir() / "pch"
    directory.mkdir(parents=True, exist_ok=True)
    key = _pch_key(flags, includes, profile)
    pch, header = directory / f"{key}.pch", directory / f"{key}.h"
    if pch.is_file() and header.is_file():
        os.utime(pch)  # newest first when pruning
        return ["-include-pch", str(pch)]
    # The PCH names its header, and libclang refuses a PCH whose header is gone: both stay.
    partial = f".{os.getpid()}.tmp"
    header.with_suffix(partial).write_text("\n".join(includes) + "\n")
    header.with_suffix(partial).replace(header)
    done = subprocess.run([CLANG, *compile_flags(flags), "-x", "c-header", str(header),
                           "-o", str(pch.with_suffix(partial))], capture_output=True, check=False)
    if done.returncode != 0:
        pch.with_suffix(partial).unlink(missing_ok=True)
        return []
    pch.with_suffix(partial).replace(pch)  # atomic: a concurrent build sees all or nothing
    old = sorted(directory.glob("*.pch"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in old[_PCH_KEEP:]:
        stale.unlink(missing_ok=True)
        stale.with_suffix(".h").unlink(missing_ok=True)
    return ["-include-pch", str(pch)]


def is_pch_failure(clang_messages: str) -> bool:
    """clang refused the precompiled preamble itself (stale or corrupt), not the program."""
    return bool(re.search(r"\b(PCH file|precompiled (header|file))\b", clang_messages))
