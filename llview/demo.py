"""`llview demo`: the main job, end to end on a real guest.

Fetches the current Debian kernel profile, boots a guest, serves its memory with the
host-side agent over encrypted TCP, builds the OS-version and process-list IDS programs,
runs them, and checks what they print against the guest's own view of itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from llview.agent_cli import AgentProcess
from llview.keys import generate_key_file
from llview.paths import REPO, LlviewError

IDS_PROGRAMS = ("os_version", "pslist")


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _run_ids(binary: Path, url: str, key: Path, *extra: str) -> str:
    result = subprocess.run([str(binary), "--agent", url, "--key", str(key), *extra],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise LlviewError(f"{binary.name} failed ({result.returncode}): {result.stderr.strip()}")
    if result.stderr:
        print(result.stderr.rstrip(), file=sys.stderr)
    return result.stdout


def _demo(args: argparse.Namespace) -> int:
    from llview.cli import main as llview_main
    from llview.kernel.profile import fetch
    from llview.vm.qemu import VM

    _step("kernel profile (Debian's current amd64 kernel)")
    profile = fetch(quiet=False)
    print(f"profile {profile.release}")

    work = Path(tempfile.mkdtemp(prefix="llview-demo-"))  # mode 0700
    key = work / "key.bin"
    generate_key_file(key)

    _step("booting the monitored guest (QEMU)")
    vm = VM.start(args.name or f"demo-{os.getpid()}", kernel=str(profile.directory),
                  quiet=False)
    agent = None
    try:
        _step("host-side agent on the guest's RAM file")
        agent = AgentProcess(["--ram", vm.ram_path, "--ram-size", str(vm.ram_size),
                              "--key-file", str(key)])
        print(agent.ready_line)
        url = f"tcp://127.0.0.1:{agent.port}"

        binaries = {}
        for name in IDS_PROGRAMS:
            _step(f"llview build ids_programs/{name}.c")
            binaries[name] = work / name
            rc = llview_main(["build", str(REPO / "ids_programs" / f"{name}.c"),
                              "-o", str(binaries[name]), "--stats"])
            if rc:
                return rc

        _step(f"./os_version --agent {url} --key KEY")
        banner = _run_ids(binaries["os_version"], url, key)
        print(banner, end="")
        _rc, proc_version = vm.exec("cat /proc/version")
        print(f"guest's /proc/version {'matches' if banner == proc_version else 'DIFFERS'}")

        _step(f"./pslist --agent {url} --key KEY --stats")
        tasks = _run_ids(binaries["pslist"], url, key, "--stats").splitlines()
        for line in tasks[:12]:
            print(line)
        print(f"... {len(tasks)} tasks in all; the last ones:")
        for line in tasks[-5:]:
            print(line)
        _rc, count = vm.exec("ls -d /proc/[0-9]* | wc -l")
        print(f"the guest's /proc lists {count.strip()} processes")

        _step("./pslist --json (first 3 records)")
        print("\n".join(_run_ids(binaries["pslist"], url, key, "--json").splitlines()[:3]))
    finally:
        if agent:
            agent.stop()
        if not args.keep:
            vm.stop(quiet=True)
        else:
            print(f"\nguest {vm.name} left running (`llview vm stop {vm.name}`)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="boot a guest and run the shipped IDS programs against it")
    p.add_argument("--name", help="guest name (default demo-PID)")
    p.add_argument("--keep", action="store_true", help="leave the guest running afterwards")
    p.set_defaults(func=_demo)
