"""Kernel functions llview supplies as C against the monitored kernel's own headers.

kernel_headers/llview/compat.c holds out-of-line kernel functions that an IDS reaches through
the kernel's inline helpers (task_ppid_nr() calls __task_pid_nr_ns(), ...); kernel_overrides.h
renames them to __llview_ names. `llview build` compiles compat.c once per set of kernel flags
(cached) and links it into an IDS module that calls one of them, before llview's passes, so
its reads of guest memory are instrumented like the IDS's own.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence

from llview.paths import KERNEL_HEADERS_DIR, LlviewError, cache_dir

COMPAT_SOURCE = KERNEL_HEADERS_DIR / "llview" / "compat.c"
_DEFINED = re.compile(r'^define [^@\n]*@"?([\w.$]+)"?\(', re.MULTILINE)


def compat_ir(flags: Sequence[str]) -> str:
    """compat.c as LLVM IR for these kernel flags, compiled once and kept in the cache."""
    from llview import frontend

    source = COMPAT_SOURCE.read_bytes()
    overrides = frontend.KERNEL_OVERRIDES_HEADER.read_bytes()
    key = hashlib.sha256(b"\0".join([source, overrides, *(f.encode() for f in flags)]))
    path = cache_dir() / "compat" / f"{key.hexdigest()[:24]}.ll"
    if path.exists():
        return path.read_text()
    ir_text, messages = frontend.start_compile_to_ir(COMPAT_SOURCE, flags).finish()
    if ir_text is None:
        raise LlviewError(f"llview's kernel compat functions do not compile against this "
                          f"kernel's headers:\n{messages}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        out.write(ir_text)
    os.replace(tmp, path)  # concurrent builds each write a whole file
    return ir_text


def supplied_functions(flags: Sequence[str]) -> set[str]:
    """The functions compat.c defines (under their __llview_ names)."""
    return set(_DEFINED.findall(compat_ir(flags)))


def link_compat(ids_ir: str, flags: Sequence[str]) -> str:
    """The IDS module with compat.c linked in when it calls one of its functions (else as is).

    The compat functions become internal, so the optimiser drops those the IDS does not use."""
    from llview.build import adopt_module_flags
    from llview.frontend import called_external_functions

    compat = compat_ir(flags)
    provided = set(_DEFINED.findall(compat))
    if not provided & called_external_functions(ids_ir):
        return ids_ir
    import llvmlite.binding as llvm

    context = llvm.create_context()
    module = llvm.parse_assembly(ids_ir, context=context)
    try:
        module.link_in(llvm.parse_assembly(adopt_module_flags(compat, ids_ir), context=context))
        for name in provided:
            module.get_function(name).linkage = "internal"
        module.verify()
        return str(module)
    except RuntimeError as e:
        raise LlviewError(f"internal error: linking llview's kernel compat functions: {e}") \
            from None
    finally:
        module.close()
