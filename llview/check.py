"""`llview check`: every shipped detection against one agent, one summary line each.

The suite is the detection programs of ids_programs/ (DETECTIONS). Each is built for the kernel
profile (cached under cache_dir()/check/: a second run compiles nothing while the program, llview's
headers, passes and runtime are unchanged), then run as the ordinary IDS binary it is, against the
one agent. Exit status: 0 when nothing was found, 1 when a program raised an alert, 2 when any
program could not give an answer (agent unreachable, unreadable memory, a failed build).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from llview.paths import KERNEL_HEADERS_DIR, REPO, LlviewError, cache_dir

IDS_DIR = REPO / "ids_programs"
# What each detection looks for (the README has what each cannot see).
DETECTIONS = {
    "hidden_modules": "modules missing from the list, sysfs, mod_tree or module memory",
    "syscall_table": "sys_call_table entries that are not the kernel's own handlers",
    "hidden_procs": "tasks missing from the task list, the pid table or a CPU; odd flags",
    "kernel_hooks": "IDT, ftrace, /proc/net seq ops, keyboard notifiers, tty ldiscs",
    "creds": "processes with init_cred or another process's credentials",
}
# Reading a live guest over the in-kernel agent under TCG takes seconds, not milliseconds.
RUN_TIMEOUT = 300


@dataclass
class Outcome:
    program: str
    status: str = "clean"  # clean | alert | error
    alerts: list[dict | str] = field(default_factory=list)
    error: str = ""
    ms: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)


def _inputs_digest(source: Path, kernel: str) -> str:
    """What a built program depends on: its source, llview's headers, compiler and runtime."""
    from llview import runtime_lib

    digest = hashlib.sha256(kernel.encode())
    parts = [source, *sorted(KERNEL_HEADERS_DIR.rglob("*")), runtime_lib.RUNTIME_ARCHIVE,
             runtime_lib.FASTPATH_IR, *sorted((REPO / "llview").rglob("*.py"))]
    for path in parts:
        if path.is_file():
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:24]


def build_suite(names: list[str], kernel: str | None) -> dict[str, Path | str]:
    """Each program's binary (built now or taken from the cache), or the build's error text."""
    from llview import runtime_lib
    from llview.kernel import load_profile

    runtime_lib.ensure_runtime()
    profile = load_profile(kernel)
    out_dir = cache_dir() / "check" / profile.release
    out_dir.mkdir(parents=True, exist_ok=True)

    def build(name: str) -> Path | str:
        source = IDS_DIR / f"{name}.c"
        binary = out_dir / f"{name}-{_inputs_digest(source, profile.release)}" / name
        if binary.is_file():
            return binary
        binary.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=binary.parent, prefix=f".{name}.")
        os.close(fd)
        done = subprocess.run([sys.executable, "-m", "llview.cli", "build", str(source), "-o", tmp,
                               "--kernel", str(profile.directory or profile.root)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            os.unlink(tmp)
            return (done.stderr + done.stdout).strip() or f"llview build {source} failed"
        os.replace(tmp, binary)  # concurrent checks each install a whole binary
        return binary

    with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as pool:
        return dict(zip(names, pool.map(build, names), strict=True))


def _parse_stats(stderr: str) -> tuple[dict[str, int], str]:
    """The runtime's --stats lines as numbers, and the rest of stderr."""
    stats: dict[str, int] = {}
    rest = []
    for line in stderr.splitlines():
        words = line.split()
        if line.startswith("llview: ") and len(words) > 3 and words[2] == "requests,":
            stats = {"requests": int(words[1]), "bytes_sent": int(words[3]),
                     "bytes_received": int(words[6]), "pages": int(words[9])}
        elif not (line.startswith("llview: ") and
                  (" reads: " in line or " walks (" in line or line.endswith(" ms"))):
            rest.append(line)
    return stats, "\n".join(rest).strip()


def run_program(name: str, binary: Path, agent: str, key: str, extra: list[str]) -> Outcome:
    out = Outcome(name)
    began = time.perf_counter()
    try:
        done = subprocess.run([str(binary), "--agent", agent, "--key", key, "--json", "--stats",
                               *extra], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        out.status, out.error = "error", f"no answer within {RUN_TIMEOUT} s"
        return out
    out.ms = (time.perf_counter() - began) * 1e3
    out.stats, errors = _parse_stats(done.stderr)
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "alert" in record:
            out.alerts.append(record)
    if done.returncode not in (0, 1) or (done.returncode == 1 and not out.alerts):
        out.status = "error"
        out.error = errors or f"exited with status {done.returncode}"
    elif out.alerts:
        out.status = "alert"
    return out


def _summary_line(o: Outcome) -> str:
    what = {"clean": "clean", "alert": f"{len(o.alerts)} alert(s)", "error": "ERROR"}[o.status]
    line = f"{o.program:16} {what:12} {o.ms:8.1f} ms  {o.stats.get('requests', 0):5} requests"
    if o.status == "error":
        line += f"\n    {o.error}"
    for a in o.alerts:
        text = a.get("alert", "") if isinstance(a, dict) else a
        line += f"\n    ALERT: {text}"
    return line


def cmd_check(args: argparse.Namespace) -> int:
    names = list(DETECTIONS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if not (IDS_DIR / f"{n}.c").is_file()]
        if unknown:
            raise LlviewError(f"--only: no program {', '.join(unknown)} (the suite: "
                              f"{', '.join(DETECTIONS)})")
    built = build_suite(names, args.kernel)
    extra = ["--timeout", str(args.timeout)] if args.timeout else []
    outcomes = []
    for name in names:  # one at a time: the in-kernel agent serves one IDS at a time
        binary = built[name]
        if isinstance(binary, str):
            outcomes.append(Outcome(name, status="error", error=f"build failed:\n{binary}"))
            continue
        outcomes.append(run_program(name, binary, args.agent, args.key, extra))
    for o in outcomes:
        if args.json:
            for a in o.alerts:
                print(json.dumps(a))
            print(json.dumps({"kind": "check", "program": o.program, "status": o.status,
                              "alerts": len(o.alerts), "ms": round(o.ms, 2), **o.stats,
                              **({"error": o.error} if o.error else {})}))
        else:
            print(_summary_line(o))
    sys.stdout.flush()
    if any(o.status == "error" for o in outcomes):
        return 2
    return 1 if any(o.status == "alert" for o in outcomes) else 0


def register(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser(
        "check", help="run every shipped detection against one agent",
        description="Build (cached) and run llview's detection programs against one agent. "
                    "Exit status 0: nothing found; 1: a program raised an alert; 2: a program "
                    "could not answer. Programs: " + "; ".join(f"{k}: {v}"
                                                              for k, v in DETECTIONS.items()))
    check.add_argument("--agent", required=True, metavar="URL",
                       help="tcp://127.0.0.1:PORT or shm:PATH, as for an IDS binary")
    check.add_argument("--key", required=True, metavar="FILE", help="the agent's key file")
    check.add_argument("--json", action="store_true",
                       help="one JSON object per finding, then one per program")
    check.add_argument("--only", metavar="A,B", help="run only these programs of ids_programs/")
    check.add_argument("--kernel", metavar="SPEC",
                       help="kernel profile the guest runs (default: the default profile)")
    check.add_argument("--timeout", type=int, metavar="S",
                       help="seconds each request may take (the IDS binaries' --timeout)")
    check.set_defaults(func=cmd_check)
