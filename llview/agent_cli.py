"""`llview agent serve`: runs the host-side agent (agents/host) on a guest's RAM or a dump.

The agent is a C program; this wrapper builds it when needed, resolves `--vm NAME` to the
guest's RAM file, refuses to serve guest memory beyond loopback unless forced, and then execs
the binary, which prints one ready line (release, KASLR slide, paging levels, symbols, address,
and the shared-memory region with `--shm PATH`, served instead of TCP unless --listen is given).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import select
import subprocess
import time
from pathlib import Path

from llview.keys import read_key_file
from llview.paths import AGENTS_DIR, LlviewError

HOST_AGENT_DIR = AGENTS_DIR / "host"
AGENT_BINARY = HOST_AGENT_DIR / "build" / "llview-agent"


def build_agent() -> Path:
    """Builds agents/host (make is a no-op when up to date) and returns the agent binary."""
    result = subprocess.run(["make", "-s", "-C", str(HOST_AGENT_DIR)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise LlviewError(f"building the host agent failed:\n{result.stdout}{result.stderr}")
    return AGENT_BINARY


def check_listen(listen: str, allow_remote: bool) -> None:
    """Accepts IPv4 ADDR:PORT; a non-loopback address only with allow_remote."""
    host, sep, port = listen.rpartition(":")
    try:
        address = ipaddress.IPv4Address(host)
        port_number = int(port)
    except ValueError:
        raise LlviewError(f"--listen {listen!r}: expected IPv4 ADDR:PORT, "
                          f"e.g. 127.0.0.1:7070") from None
    if not sep or not 0 <= port_number <= 65535:
        raise LlviewError(f"--listen {listen!r}: expected IPv4 ADDR:PORT")
    if not address.is_loopback and not allow_remote:
        raise LlviewError(f"--listen {listen}: not a loopback address; the agent would serve "
                          "guest memory to the network (add --allow-remote if you mean it)")


def resolve_memory(args: argparse.Namespace) -> tuple[str, list[str]]:
    """Returns the memory file and the agent flags naming it."""
    if args.vm:
        from llview.vm.qemu import VM  # the VM layer is only needed for --vm

        vm = VM.load(args.vm)
        if not vm.alive():
            raise LlviewError(f"VM {args.vm!r} is not running (`llview vm start --name "
                              f"{args.vm}`)")
        return vm.ram_path, ["--ram", vm.ram_path, "--ram-size", str(vm.ram_size)]
    path = args.ram or args.image
    flags = ["--ram" if args.ram else "--image", path]
    if args.ram_size:
        flags += ["--ram-size", args.ram_size]
    return path, flags


def check_shm(path: str) -> None:
    """A region path the IDS can name as shm:PATH: absolute, in an existing directory."""
    region = Path(path)
    if not region.is_absolute() or not region.parent.is_dir():
        raise LlviewError(f"--shm {path!r}: expected an absolute path in an existing directory, "
                          f"e.g. /dev/shm/llview-NAME")


def agent_command(args: argparse.Namespace) -> list[str]:
    """The agent's argv for parsed `llview agent serve` arguments (validated here)."""
    # With --shm, TCP is served only when --listen is given too.
    listen = args.listen if args.listen or args.shm else "127.0.0.1:7070"
    if listen:
        check_listen(listen, args.allow_remote)
    if args.shm:
        check_shm(args.shm)
    read_key_file(Path(args.key))  # clear errors for a missing or world-readable key
    path, flags = resolve_memory(args)
    if not Path(path).exists():
        raise LlviewError(f"{path}: guest memory file not found")
    cmd = [str(build_agent()), *flags, "--key-file", args.key, "--wait", str(args.wait)]
    if listen:
        cmd += ["--listen", listen]
    if args.shm:
        cmd += ["--shm", args.shm]
    if args.allow_remote:
        cmd.append("--allow-remote")
    if args.pgd is not None:
        cmd += ["--pgd", args.pgd, "--levels", str(args.levels)]
    if args.system_map:
        cmd += ["--system-map", args.system_map]
    if args.verbose:
        cmd.append("--verbose")
    return cmd


READY = re.compile(r"llview-agent ready: .* listening on ([\d.]+):(\d+)")
SHM_READY = re.compile(r"llview-agent ready: .*shared memory at (\S+)$")


class AgentProcess:
    """The host agent run in the background on port 0 (the kernel picks a free port), and
    also on the shared-memory region `shm` when given.

    Waits for the agent's ready line; .port, .shm and .ready_line are set once it serves.
    """

    def __init__(self, args: list[str], binary: Path | None = None, timeout: float = 60.0,
                 shm: str | None = None):
        binary = binary or build_agent()
        extra = ["--shm", shm] if shm else []
        self.proc = subprocess.Popen([str(binary), "--listen", "127.0.0.1:0", *extra, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ready_line = ""
        self.shm = shm
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                m = READY.search(line := self.proc.stdout.readline())
                if m:
                    self.ready_line = line.strip()
                    self.port = int(m.group(2))
                    if shm and not SHM_READY.search(self.ready_line):
                        self.stop()
                        raise LlviewError(f"the host agent does not serve {shm}: "
                                          f"{self.ready_line}")
                    return
            if self.proc.poll() is not None:
                raise LlviewError(f"the host agent exited ({self.proc.returncode}): "
                                  f"{self.proc.stderr.read().strip()}")
        self.stop()
        raise LlviewError("the host agent did not become ready in time")

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


def _serve(args: argparse.Namespace) -> int:
    if (args.pgd is None) != (args.levels is None):
        raise LlviewError("raw mode needs both --pgd PHYS and --levels 4|5")
    cmd = agent_command(args)
    os.execv(cmd[0], cmd)
    return 1  # not reached


def register(sub: argparse._SubParsersAction) -> None:
    agent = sub.add_parser("agent", help="the host-side agent that serves guest memory")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True, metavar="COMMAND")
    p = agent_sub.add_parser(
        "serve", help="serve a guest's memory over the encrypted llview protocol",
        description="Map a guest's RAM (live) or a memory dump, find its kernel (VMCOREINFO, "
                    "kallsyms, page tables) and serve encrypted page reads. Prints one ready "
                    "line when listening.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--vm", metavar="NAME", help="a guest started by `llview vm start`")
    source.add_argument("--ram", metavar="FILE",
                        help="a QEMU q35 memory-backend-file (e.g. /dev/shm/NAME.ram)")
    source.add_argument("--image", metavar="FILE",
                        help="a memory dump, its format told by its first bytes: an ELF core "
                             "(`llview vm dump`, QEMU dump-guest-memory with paging=false, a "
                             "kdump vmcore; its VMCOREINFO note is used when it has one, else "
                             "its RAM is scanned for the note) or a raw physical memory image "
                             "(offset = physical address)")
    p.add_argument("--ram-size", metavar="N",
                   help="guest RAM size (default: the file size; not for an ELF core)")
    p.add_argument("--listen", metavar="ADDR:PORT",
                   help="where to listen (default 127.0.0.1:7070 unless --shm is given; "
                        "port 0 picks one)")
    p.add_argument("--shm", metavar="PATH",
                   help="serve a shared-memory region at PATH (e.g. /dev/shm/llview-NAME; "
                        "created mode 0600, or an existing QEMU ivshmem backend file); IDS "
                        "programs reach it with --agent shm:PATH")
    p.add_argument("--key", required=True, metavar="FILE",
                   help="32-byte key file, mode 0600 (`llview keygen`)")
    p.add_argument("--allow-remote", action="store_true",
                   help="permit a non-loopback --listen address")
    p.add_argument("--pgd", metavar="PHYS",
                   help="raw mode: page-table root (no VMCOREINFO, no symbols)")
    p.add_argument("--levels", type=int, choices=(4, 5), help="raw mode: paging levels")
    p.add_argument("--wait", type=int, default=120, metavar="SECONDS",
                   help="how long to wait for a booting guest's kernel (default 120)")
    p.add_argument("--system-map", metavar="FILE",
                   help="cross-check kallsyms against a real System.map")
    p.add_argument("--verbose", action="store_true", help="log every connection")
    p.set_defaults(func=_serve)
