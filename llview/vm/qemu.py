"""The monitored guest: QEMU booting a kernel profile with llview's initramfs, RAM in a file.

State of a guest named N lives in cache_dir()/vms/N/ (mode 0700): state.json (pid, RAM file,
ports, sockets), console.log (the kernel console, ttyS0), exec.sock (ttyS1, served by the guest
init for `vm exec`), qmp.sock (QEMU's machine protocol) and qemu.log. Guest RAM is a shared
memory-backend-file in /dev/shm that the host-side agent maps.

Options of start():
- agent="kernel": the in-kernel agent (llview/kmod.py) is built for the guest's kernel and
  loaded by the guest init, with the 32-byte key. The key travels only in a per-guest initramfs
  overlay (0600, in the 0700 state directory, deleted as soon as QEMU has loaded it), never in
  the shared cached image. It listens on guest port 7070, forwarded from 127.0.0.1:host_port.
- shm (default: on with the kernel agent): an ivshmem-plain PCI device backed by the file
  shm_path in /dev/shm (SHM_SIZE bytes), which the module serves and the IDS maps
  (`--agent shm:PATH`). Removed at stop.
- confine (default on): the known daemons run in a "container", their own pid, mount, net and
  uts namespaces under /bin/llv-container; the agent and the exec server stay outside.
  confined_comms names what runs inside.
- vmcoreinfo (default off): QEMU's vmcoreinfo device, and the guest's qemu_fw_cfg module loaded
  at boot, which tells QEMU where the kernel's VMCOREINFO note is: then dump() writes that note
  into the ELF core (without it the agent finds the note by scanning the dump's RAM).
RAM and shm files are created 0600 before QEMU opens them (QEMU itself would make them 0644).

dump() writes the guest's memory to an ELF core through QMP (dump-guest-memory, paging=false),
which the host agent serves with --image as it serves the live RAM file.
"""

from __future__ import annotations

import base64
import fcntl
import gzip
import hashlib
import json
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llview import kmod
from llview.kernel.profile import Profile, load_profile
from llview.paths import LlviewError, cache_dir
from llview.vm.initramfs import (
    AGENT_INIT_PATH,
    CONTAINER_INIT,
    build_extra_archive,
    build_initramfs,
    known_comms,
)

QEMU = "qemu-system-x86_64"
READY_MARKER = "LLVIEW-GUEST-READY"
GUEST_AGENT_PORT = 7070  # the guest port the forwarded host port reaches
DEFAULT_MEMORY = "512M"
DEFAULT_TASKS = 250
AGENTS = ("none", "kernel")
KEY_LEN = 32
SHM_SIZE = kmod.SHM_REGION_SIZE  # LLV_SHM_SIZE of protocol/llview_shm.h
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path minus the terminating NUL
MAX_EXEC_PAYLOAD = 1 << 20  # base64 bytes of one `vm exec` script
PUSH_CHUNK = 192 << 10  # file bytes per `vm exec` in push(): ~350 KB on the line, ~15 s
GUEST_PUSH_DIR = "/tmp/llview-push"  # where insmod() puts a host module in the guest
_PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ACK_TIMEOUT = 20.0  # seconds for the guest to start a request before it is sent again
EXEC_RESENDS = 2
# Seconds of silence from a running request before the host sends the guest a newline (which
# its exec server ignores between requests): serial input makes the guest's 8250 driver service
# the port, output included, so an output interrupt lost under TCG cannot stall a reply.
EXEC_NUDGE = 10.0
# Seconds of silence after the guest acknowledged a request, with no reply begun, before the
# request is sent once more: the guest runs an id once and answers a repeat of the last one
# with its reply again (exec_server.awk), so a reply lost on the line is not waited for until
# the deadline. A request still running just sees the repeat queued behind it.
EXEC_REPLY_RESEND = 25.0
EXEC_REPLY_RESENDS = 2
FW_CFG_MODULE_DIR = "/lib/modules/llview-fw-cfg"  # guest path of qemu_fw_cfg (vmcoreinfo=True)


class ExecNotStarted(LlviewError):
    """`vm exec`: the guest never acknowledged the request (so it never ran)."""


class ExecStalled(LlviewError):
    """`vm exec`: the guest started the request, and no reply came in time."""


class QMP:
    """One QMP session on a guest's qmp.sock (QEMU accepts one client at a time): the
    greeting, qmp_capabilities, then execute() per command. Asynchronous events in between
    are skipped."""

    def __init__(self, socket_path: str, timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.buffer = b""
        try:
            self.sock.connect(socket_path)
            self._message()  # {"QMP": {...}} greeting
            self.execute("qmp_capabilities")
        except OSError as e:
            self.sock.close()
            raise LlviewError(f"cannot talk QMP on {socket_path}: {e}") from e

    def __enter__(self) -> QMP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _message(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise LlviewError("QEMU closed the QMP connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command: str, **arguments: Any) -> Any:
        """Runs a QMP command; its "return" value, or LlviewError with QEMU's message."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            reply = self._message()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise LlviewError(f"QMP {command}: {reply['error'].get('desc', reply['error'])}")


@dataclass
class DumpResult:
    path: str
    size: int
    seconds: float  # from the command to QEMU reporting completion (the guest is paused)


def vms_dir() -> Path:
    path = cache_dir() / "vms"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise LlviewError(f"bad VM name {name!r}: 1-32 letters, digits, '_' or '-'")
    return name


def parse_size(text: str) -> int:
    """'512M', '1G', '1024K' or a plain number of MiB, to bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", text, re.I)
    if not match:
        raise LlviewError(f"bad memory size {text!r}: use e.g. 512M or 1G")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "": 1 << 20}[match.group(2).upper()]
    size = int(match.group(1)) * scale
    if size < 128 << 20 or size % (2 << 20):
        raise LlviewError(f"memory size {text!r}: need at least 128M, in 2M steps")
    return size


def _free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shm_file(name: str, state_dir: Path, suffix: str) -> str:
    """/dev/shm/llview-NAME-HASH.SUFFIX: the hash keeps guests of different caches apart."""
    tag = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    return f"/dev/shm/llview-{name}-{tag}.{suffix}"


def _ram_path(name: str, state_dir: Path) -> str:
    return _shm_file(name, state_dir, "ram")


def _create_private(path: str) -> None:
    """A new empty 0600 file for QEMU to size and map (it would create 0644 ones itself).

    O_EXCL|O_NOFOLLOW: /dev/shm is world-writable, so never follow someone else's symlink."""
    Path(path).unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"llview: {msg}", file=sys.stderr, flush=True)


@dataclass
class VM:
    """A guest started by llview; load() re-reads it from its state directory."""

    name: str
    pid: int
    state_dir: str
    ram_path: str
    ram_size: int
    host_port: int
    console_log: str
    exec_socket: str
    qmp_socket: str
    kernel_release: str
    kernel_dir: str
    accel: str
    tasks: int
    boot_seconds: float = 0.0
    guest_tasks: int = 0
    la57: bool = False
    agent: str = "none"  # "kernel": llview_agent.ko runs in the guest
    shm_path: str = ""  # the ivshmem region's file, "" without --shm
    shm_size: int = 0
    confined: bool = False
    confined_comms: list[str] = field(default_factory=list)  # comm values inside the container
    vmcoreinfo: bool = False  # -device vmcoreinfo, qemu_fw_cfg loaded: dumps carry the note

    @property
    def tcp_url(self) -> str:
        """The IDS's --agent URL for the in-kernel agent over TCP."""
        return f"tcp://127.0.0.1:{self.host_port}"

    @property
    def shm_url(self) -> str:
        """The IDS's --agent URL for the in-kernel agent over the ivshmem region."""
        return f"shm:{self.shm_path}" if self.shm_path else ""

    # ---- lifecycle -----------------------------------------------------------------------

    @classmethod
    def start(cls, name: str, kernel: str | None = None, memory: str = DEFAULT_MEMORY,
              tasks: int = DEFAULT_TASKS, accel: str = "tcg", timeout: float = 180.0,
              quiet: bool = False, files: dict[str, str | Path] | None = None,
              agent: str = "none", key: bytes | None = None, host_port: int | None = None,
              shm: bool | None = None, confine: bool = True, vmcoreinfo: bool = False) -> VM:
        """Boots a guest and waits until `exec` works (and, with agent="kernel", the agent
        has loaded and taken the key).

        files maps guest paths to host files placed in the initramfs (e.g. kernel modules):
        the fast way in, since the exec serial line carries only ~20 KB/s. host_port is the
        127.0.0.1 port forwarded to the guest's agent port (default: a free one); shm=None
        means "on with the kernel agent".
        """
        check_name(name)
        if agent not in AGENTS:
            raise LlviewError(f"bad agent {agent!r}: choose one of {', '.join(AGENTS)}")
        if agent == "kernel" and key is None:
            raise LlviewError("--agent kernel needs a key: --key FILE (make one with "
                              "`llview keygen FILE`)")
        if agent != "kernel" and key is not None:
            raise LlviewError("a key is only used with --agent kernel")
        if key is not None and len(key) != KEY_LEN:
            raise LlviewError(f"the agent key must be {KEY_LEN} bytes, not {len(key)}")
        if host_port is not None and not 1 <= host_port <= 65535:
            raise LlviewError(f"--agent-port {host_port}: choose 1..65535")
        if shm is None:
            shm = agent == "kernel"
        if accel not in ("tcg", "kvm"):
            raise LlviewError(f"bad accelerator {accel!r}: tcg or kvm")
        if accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
            raise LlviewError("--accel kvm needs a usable /dev/kvm")
        if not 1 <= tasks <= 4000:
            raise LlviewError(f"--tasks {tasks}: choose 1..4000")
        ram_size = parse_size(memory)
        if shutil.which(QEMU) is None:
            raise LlviewError(f"{QEMU} is not installed (apt-get install qemu-system-x86)")
        profile = load_profile(kernel)
        guest_agent = None
        if agent == "kernel":
            guest_agent = kmod.guest_agent(profile, port=GUEST_AGENT_PORT, quiet=quiet)

        state_dir = vms_dir() / name
        if (state_dir / "state.json").exists():
            old = cls.load(name)
            if old.alive():
                raise LlviewError(f"VM {name} is already running (pid {old.pid}); "
                                  f"`llview vm stop {name}` first")
            old._cleanup()
        shutil.rmtree(state_dir, ignore_errors=True)
        state_dir.mkdir(parents=True, mode=0o700)
        state_dir.chmod(0o700)  # whatever the umask: the overlay holding the key lands here
        exec_socket = state_dir / "exec.sock"
        if len(str(exec_socket)) > _SUN_PATH_MAX - 2:
            raise LlviewError(f"state directory {state_dir} is too long for a unix socket path; "
                              "set LLVIEW_HOME to a shorter directory")
        initrd = build_initramfs(quiet=quiet)
        overlay: dict[str, str | Path | tuple[Path, int]] = {g: Path(h) for g, h in
                                                             (files or {}).items()}
        blobs: dict[str, tuple[bytes, int]] = {}
        init_lines: list[str] = []
        if vmcoreinfo:
            # qemu_fw_cfg hands QEMU's vmcoreinfo device the address of the kernel's note.
            for module in kmod.load_order(profile, ["qemu_fw_cfg"]):
                guest_path = f"{FW_CFG_MODULE_DIR}/{module.name}"
                overlay[guest_path] = module
                init_lines.append(f"insmod {guest_path} || echo 'llview: cannot load "
                                  f"{module.name}' >&2")
        if guest_agent is not None:
            overlay.update(guest_agent.files)
            blobs[guest_agent.key_path] = (key, 0o600)
            init_lines.append(guest_agent.init_script)
        if init_lines:
            blobs[AGENT_INIT_PATH] = (("\n".join(init_lines) + "\n").encode(), 0o755)
        # Per-guest files (the key!) go only into this overlay, never into the shared image.
        overlay_path = state_dir / "initrd.cpio.gz"
        if overlay or blobs:
            extra = build_extra_archive(overlay, blobs)
            _write_private(overlay_path, initrd.read_bytes() + gzip.compress(extra, mtime=0))
            initrd = overlay_path
        vm = cls(name=name, pid=0, state_dir=str(state_dir),
                 ram_path=_ram_path(name, state_dir), ram_size=ram_size,
                 host_port=host_port or _free_local_port(),
                 console_log=str(state_dir / "console.log"),
                 exec_socket=str(exec_socket), qmp_socket=str(state_dir / "qmp.sock"),
                 kernel_release=profile.release, kernel_dir=str(profile.directory or profile.root),
                 accel=accel, tasks=tasks, agent=agent,
                 shm_path=_shm_file(name, state_dir, "shm") if shm else "",
                 shm_size=SHM_SIZE if shm else 0, confined=confine, vmcoreinfo=vmcoreinfo)
        _create_private(vm.ram_path)
        if vm.shm_path:
            Path(vm.shm_path).unlink(missing_ok=True)  # a stale one of this name and cache
            kmod.create_shm_region(vm.shm_path)
        cmd = vm._qemu_command(str(profile.vmlinuz), str(initrd))
        _say(f"starting guest {name}: kernel {profile.release}, {memory} RAM, {accel.upper()}"
             f"{', in-kernel agent' if agent == 'kernel' else ''}"
             f"{', ivshmem' if shm else ''}{', confined workload' if confine else ''}", quiet)
        began = time.monotonic()
        with open(state_dir / "qemu.log", "w") as log:
            # -daemonize: QEMU forks, and the parent exits once the machine is set up (the
            # kernel and initrd are loaded into guest RAM by then).
            try:
                done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.PIPE, text=True, timeout=60, check=False)
            except subprocess.TimeoutExpired:
                vm._cleanup()
                raise LlviewError("QEMU did not finish setting up the machine in 60 s") from None
            finally:
                overlay_path.unlink(missing_ok=True)  # it may hold the key: no copy stays
        if done.returncode != 0:
            vm._cleanup()
            hint = ("\n(KVM often fails in nested setups; the default --accel tcg works everywhere)"
                    if accel == "kvm" else "")
            raise LlviewError(f"QEMU failed to start: {done.stderr.strip()}{hint}")
        try:
            vm.pid = int((state_dir / "qemu.pid").read_text().strip())
        except (OSError, ValueError) as e:
            vm._cleanup()
            raise LlviewError(f"QEMU started but wrote no pid file: {e}") from e
        vm._save()
        try:
            vm._wait_for_boot(began, timeout, quiet)
        except BaseException:
            vm.stop(quiet=True, keep_logs=True)
            raise
        vm.boot_seconds = round(time.monotonic() - began, 1)
        vm._save()
        _say(f"guest {name} up in {vm.boot_seconds:.1f} s: {vm.guest_tasks} tasks, "
             f"5-level paging {'on' if vm.la57 else 'off'}, RAM file {vm.ram_path}, "
             f"host port {vm.host_port}", quiet)
        return vm

    def urls(self) -> list[str]:
        """The --agent URLs that reach this guest's in-kernel agent (none without one)."""
        if self.agent != "kernel":
            return []
        return [self.tcp_url, *([self.shm_url] if self.shm_path else [])]

    def _qemu_command(self, vmlinuz: str, initrd: str) -> list[str]:
        state = Path(self.state_dir)
        mib = self.ram_size >> 20
        append = (f"console=ttyS0 panic=-1 llview.tasks={self.tasks} "
                  f"llview.confine={int(self.confined)}")
        shm = kmod.ivshmem_qemu_args(self.shm_path, "shm0") if self.shm_path else []
        return [
            QEMU, "-name", f"llview-{self.name}",
            "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
            "-machine", "q35,memory-backend=ram",
            "-object", f"memory-backend-file,id=ram,size={mib}M,mem-path={self.ram_path},share=on",
            "-m", f"{mib}M",
            "-accel", self.accel, "-cpu", "max", "-smp", "1",
            "-kernel", vmlinuz, "-initrd", initrd, "-append", append,
            "-serial", f"file:{self.console_log}",
            "-serial", f"unix:{self.exec_socket},server=on,wait=off",
            "-qmp", f"unix:{self.qmp_socket},server=on,wait=off",
            "-netdev", (f"user,id=n0,restrict=on,"
                        f"hostfwd=tcp:127.0.0.1:{self.host_port}-:{GUEST_AGENT_PORT}"),
            "-device", "virtio-net-pci,netdev=n0",
            *shm,
            *(["-device", "vmcoreinfo"] if self.vmcoreinfo else []),
            "-no-reboot", "-daemonize", "-pidfile", str(state / "qemu.pid"),
        ]

    def _wait_for_boot(self, began: float, timeout: float, quiet: bool) -> None:
        _say(f"waiting for the guest to boot (TCG takes ~10-30 s; timeout {timeout:.0f} s)",
             quiet)
        next_note = began + 10
        marker = re.compile(READY_MARKER + r" tasks=(\d+) la57=(\d+) agent=(\S+) confined=(\S+)")
        while True:
            text = self.console_text()
            found = marker.search(text)
            if found:
                self.guest_tasks = int(found.group(1))
                self.la57 = int(found.group(2)) > 0
                if self.agent == "kernel" and found.group(3) != "1":
                    raise LlviewError(f"guest {self.name}: the in-kernel agent did not load; "
                                      f"console tail:\n{self._tail(text)}")
                if self.confined and found.group(4) != "1":
                    raise LlviewError(f"guest {self.name}: the confined workload did not start "
                                      f"(unshare); console tail:\n{self._tail(text)}")
                break
            now = time.monotonic()
            if not self.alive():
                raise LlviewError(f"guest {self.name} died while booting; console tail:\n"
                                  + self._tail(text))
            if now - began > timeout:
                raise LlviewError(f"guest {self.name} did not boot within {timeout:.0f} s; "
                                  f"console tail:\n{self._tail(text)}")
            if now >= next_note:
                _say(f"  still booting ({now - began:.0f} s)", quiet)
                next_note += 10
            time.sleep(0.2)
        # The console says the exec server is up; prove the channel works end to end.
        rc, out = self.exec("echo llview-exec-ok", timeout=30)
        if rc != 0 or out.strip() != "llview-exec-ok":
            raise LlviewError(f"guest {self.name} booted but `vm exec` does not answer "
                              f"(rc {rc}, {out!r})")
        if self.agent == "kernel":
            # kmod's init commands say on the console when the key device refused the key.
            rc, out = self.exec(f"test -e {kmod.GUEST_KEY_PATH} && echo key-file-left")
            text = self.console_text()
            if "key not accepted" in text or "key-file-left" in out:
                raise LlviewError(f"guest {self.name}: the in-kernel agent did not take its "
                                  f"key; console tail:\n{self._tail(text)}")
        if self.confined:
            self.confined_comms = [CONTAINER_INIT, *known_comms()]

    @staticmethod
    def _tail(text: str, lines: int = 15) -> str:
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"

    def profile(self) -> Profile:
        """The kernel profile this guest booted."""
        return load_profile(self.kernel_dir)

    def console_text(self) -> str:
        try:
            return Path(self.console_log).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @classmethod
    def load(cls, name: str) -> VM:
        check_name(name)
        path = vms_dir() / name / "state.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise LlviewError(f"no VM named {name!r}; `llview vm list` shows them") from None
        except ValueError as e:
            raise LlviewError(f"corrupt VM state {path}: {e}") from e
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def list(cls) -> list[VM]:
        vms = []
        for state in sorted(vms_dir().glob("*/state.json")):
            try:
                vms.append(cls.load(state.parent.name))
            except LlviewError:
                continue
        return vms

    def _save(self) -> None:
        path = Path(self.state_dir) / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    def alive(self) -> bool:
        """True while our QEMU runs: the pid exists and its command line is this VM's."""
        if self.pid <= 0:
            return False
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return self.exec_socket.encode() in b" ".join(cmdline)

    def stop(self, quiet: bool = False, keep_logs: bool = False) -> None:
        """Kills our QEMU (by its recorded pid, after checking it is ours) and frees its RAM."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.alive():
                os.kill(self.pid, signal.SIGKILL)
                while self.alive() and time.monotonic() < deadline + 5:
                    time.sleep(0.1)
            _say(f"stopped guest {self.name} (pid {self.pid})", quiet)
        else:
            _say(f"guest {self.name} was not running; removed its state", quiet)
        self._cleanup(keep_logs=keep_logs)

    def _cleanup(self, keep_logs: bool = False) -> None:
        Path(self.ram_path).unlink(missing_ok=True)
        if self.shm_path:
            Path(self.shm_path).unlink(missing_ok=True)
        state = Path(self.state_dir)
        if keep_logs:
            for leftover in ("state.json", "exec.sock", "qmp.sock", "exec.lock", "qemu.pid",
                             "initrd.cpio.gz"):
                (state / leftover).unlink(missing_ok=True)
        else:
            shutil.rmtree(state, ignore_errors=True)

    # ---- QMP: memory dumps ---------------------------------------------------------------

    def qmp(self) -> QMP:
        """A QMP session with this guest's QEMU (use it in a with block)."""
        if not self.alive():
            raise LlviewError(f"VM {self.name} is not running")
        return QMP(self.qmp_socket)

    def dump(self, path: str | Path, timeout: float = 300.0) -> DumpResult:
        """Writes guest memory to path as an ELF core (dump-guest-memory, paging=false: every
        RAM block at its guest physical address) and waits until QEMU says it is complete.

        QEMU pauses the guest while it writes and resumes it after. The file is QEMU's own
        (mode 0400); an existing path is refused rather than overwritten.
        """
        target = Path(path).absolute()
        if target.exists() or target.is_symlink():
            raise LlviewError(f"{target} exists; give a new file for the dump")
        if not target.parent.is_dir():
            raise LlviewError(f"{target.parent} is not a directory")
        began = time.monotonic()
        with self.qmp() as qmp:
            qmp.execute("dump-guest-memory", paging=False, protocol=f"file:{target}",
                        detach=True)
            while True:
                state = qmp.execute("query-dump")
                if state["status"] == "completed":
                    break
                if state["status"] == "failed":
                    raise LlviewError(f"QEMU could not dump VM {self.name} to {target}")
                if time.monotonic() - began > timeout:
                    raise LlviewError(f"dumping VM {self.name} took more than {timeout:.0f} s "
                                      f"({state.get('completed', 0)} of "
                                      f"{state.get('total', '?')} bytes)")
                time.sleep(0.05)
        return DumpResult(str(target), target.stat().st_size, time.monotonic() - began)

    # ---- running commands in the guest -----------------------------------------------------

    def exec(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        """Runs `command` with the guest's sh; returns (exit status, stdout+stderr as text).

        The guest kills the command (and its process group) after `timeout` seconds, which
        gives status 143; a guest that does not answer at all raises LlviewError.
        """
        rc, output = self.exec_raw(command, timeout)
        return rc, output.decode(errors="replace")

    def exec_raw(self, command: str, timeout: float = 60.0) -> tuple[int, bytes]:
        """Like exec(), with the output as the exact bytes the command wrote."""
        if not self.alive():
            raise LlviewError(f"VM {self.name} is not running")
        limit = max(1, math.ceil(timeout))
        request_id = secrets.token_hex(8)
        payload = base64.b64encode(command.encode()).decode()
        if len(payload) > MAX_EXEC_PAYLOAD:
            raise LlviewError(f"command of {len(command)} bytes is too long for `vm exec` (the "
                              "serial line moves ~20 KB/s); ship big files with start(files=)")
        # The leading newline ends any stale fragment on the line (see exec_server.awk).
        lines = [payload[i:i + 76] for i in range(0, len(payload), 76)]
        request = "\n".join(["", f"@@LLVIEW-EXEC {request_id} {limit}", *lines,
                             f"@@LLVIEW-RUN {request_id}", ""]).encode()
        # The serial line carries roughly 20 KB/s towards the guest under TCG.
        began = time.monotonic()
        deadline = began + limit + 30 + len(payload) / 10_000
        with open(Path(self.state_dir) / "exec.lock", "w") as lock:
            # One request on the serial line at a time, across processes.
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LlviewError(
                            f"VM {self.name}: another `vm exec` holds the line") from None
                    time.sleep(0.05)
            try:
                return self._exchange(request, request_id, deadline)
            except ExecNotStarted:
                # Never acknowledged, so it never ran: one fresh request, under a new id, is
                # safe (a stalled channel was seen to serve the next request at once).
                fresh = secrets.token_hex(8)
                request = request.replace(request_id.encode(), fresh.encode())
                return self._exchange(request, fresh, time.monotonic() + (deadline - began))

    # ---- files and kernel modules in a running guest -----------------------------------

    def push(self, host_path: str | Path, guest_path: str, mode: int = 0o644,
             timeout: float = 120.0) -> None:
        """Copies a host file into the running guest over the exec channel, in chunks.

        The file lands at guest_path (parent directories made) with `mode`, only after its
        SHA-256 in the guest matches the host's; a partial copy never takes its place. The
        line carries ~20 KB/s under TCG: fine for a stripped module, slow for big files
        (start(files=) puts those into the initramfs instead).
        """
        try:
            data = Path(host_path).read_bytes()
        except OSError as e:
            raise LlviewError(f"cannot read {host_path}: {e.strerror}") from None
        if not guest_path.startswith("/") or guest_path.endswith("/"):
            raise LlviewError(f"guest path {guest_path!r}: give an absolute file path")
        target = shlex.quote(guest_path)
        partial = shlex.quote(f"{guest_path}.part")
        parent = shlex.quote(os.path.dirname(guest_path) or "/")
        for offset in range(0, max(len(data), 1), PUSH_CHUNK):
            chunk = base64.b64encode(data[offset:offset + PUSH_CHUNK]).decode()
            redirect = ">" if offset == 0 else ">>"
            setup = f"mkdir -p {parent} && " if offset == 0 else ""
            rc, out = self.exec(f"{setup}echo {chunk} | base64 -d {redirect} {partial}",
                                timeout=timeout)
            if rc != 0:
                self.exec(f"rm -f {partial}")
                raise LlviewError(f"VM {self.name}: copying {host_path} to {guest_path} failed "
                                  f"at byte {offset} ({rc}): {out.strip()}")
        digest = hashlib.sha256(data).hexdigest()
        rc, out = self.exec(f"set -- $(sha256sum {partial}) && [ \"$1\" = {digest} ] && "
                            f"chmod {mode:o} {partial} && mv -f {partial} {target} || "
                            f"{{ echo \"guest sha256 ${{1:-none}}\"; rm -f {partial}; exit 1; }}",
                            timeout=timeout)
        if rc != 0:
            raise LlviewError(f"VM {self.name}: the copy of {host_path} at {guest_path} is "
                              f"damaged ({out.strip()}; host sha256 {digest})")

    def dmesg_tail(self, lines: int = 15) -> str:
        """The last lines of the guest's kernel log."""
        rc, out = self.exec(f"dmesg | tail -n {int(lines)}")
        return out.rstrip() if rc == 0 else f"(dmesg failed: {out.strip()})"

    def insmod(self, path: str | Path, params: dict[str, str | int] | None = None,
               guest_path: str | None = None) -> str:
        """Loads a host .ko file into the running guest: push() then insmod with params.

        Returns the module's name (the file name without .ko, '-' as '_'). A module that does
        not load raises LlviewError with insmod's message and the tail of the guest's dmesg.
        """
        path = Path(path)
        if not path.is_file():
            raise LlviewError(f"no module file {path}")
        name = path.name.split(".ko", 1)[0].replace("-", "_")
        words = []
        for key, value in (params or {}).items():
            if not _PARAM_RE.match(key):
                raise LlviewError(f"bad module parameter name {key!r}")
            words.append(shlex.quote(f"{key}={value}"))
        guest_path = guest_path or f"{GUEST_PUSH_DIR}/{path.name}"
        self.push(path, guest_path)
        rc, out = self.exec(f"insmod {shlex.quote(guest_path)} {' '.join(words)}".rstrip())
        if rc != 0:
            raise LlviewError(f"VM {self.name}: module {name} did not load (insmod exit {rc}): "
                              f"{out.strip() or 'no message'}\nguest dmesg tail:\n"
                              f"{self.dmesg_tail()}")
        return name

    def rmmod(self, module: str) -> None:
        """Unloads a module from the running guest; failing, says why (rmmod's message and the
        guest's dmesg tail)."""
        if not _PARAM_RE.match(module.replace("-", "_")):
            raise LlviewError(f"bad module name {module!r}")
        rc, out = self.exec(f"rmmod {module}")
        if rc != 0:
            raise LlviewError(f"VM {self.name}: cannot unload {module} (rmmod exit {rc}): "
                              f"{out.strip() or 'no message'}\nguest dmesg tail:\n"
                              f"{self.dmesg_tail()}")

    def _exchange(self, request: bytes, request_id: str, deadline: float) -> tuple[int, bytes]:
        ack = f"@@LLVIEW-ACK {request_id}".encode()
        begin = f"@@LLVIEW-BEGIN {request_id}".encode()
        end_prefix = f"@@LLVIEW-END {request_id} ".encode()
        # The guest acknowledges a request when it starts it, and runs each id at most once,
        # so a request lost on the line (e.g. glued to a dead client's fragment) is resent.
        ack_wait = ACK_TIMEOUT + len(request) / 10_000
        sock: socket.socket | None = None
        try:
            sends = replies_asked = 0
            nudged_at = 0.0
            acked = False
            resend_at = 0.0
            heard_at = time.monotonic()
            buffer = b""
            body: list[bytes] | None = None
            while True:
                now = time.monotonic()
                if not acked and now >= resend_at:
                    # Each (re)send on a fresh connection: a connection the exec channel
                    # stopped serving was seen to stall a request while the next connection
                    # was answered at once. The guest runs an id at most once.
                    if sock is not None:
                        sock.close()
                    sock = self._exec_connect()
                    buffer = b""
                    self._send(sock, request, deadline)
                    sends += 1
                    # After the last resend, the guest may just be busy: wait for the deadline.
                    resend_at = (time.monotonic() + ack_wait if sends <= EXEC_RESENDS
                                 else math.inf)
                assert sock is not None
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    line = line.rstrip(b"\r")
                    if line == ack:
                        acked = True
                    elif line == begin:
                        acked = True
                        body = []
                    elif body is not None and line.startswith(end_prefix):
                        return self._decode_reply(line[len(end_prefix):], body)
                    elif body is not None:
                        body.append(line.strip())
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    heard = time.monotonic() - heard_at
                    raise (ExecStalled if acked else ExecNotStarted)(
                        f"VM {self.name}: no answer from the guest in time (request "
                        f"{'acknowledged' if acked else 'never acknowledged'}, sent {sends} "
                        f"time(s), reply asked for again {replies_asked} time(s), last heard "
                        f"{heard:.0f} s ago)")
                wait = remaining if acked else min(remaining, resend_at - time.monotonic())
                sock.settimeout(max(min(wait, 5), 0.05))
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    if not self.alive():
                        raise LlviewError(f"VM {self.name} died during `vm exec`") from None
                    now = time.monotonic()
                    if acked and body is None and now - heard_at >= EXEC_REPLY_RESEND and \
                            replies_asked < EXEC_REPLY_RESENDS:
                        self._send(sock, request, deadline)
                        replies_asked += 1
                        heard_at = nudged_at = now
                    elif acked and now - max(heard_at, nudged_at) >= EXEC_NUDGE:
                        self._send(sock, b"\n", deadline)
                        nudged_at = now
                    continue
                if not chunk:
                    raise LlviewError(f"VM {self.name}: exec channel closed")
                heard_at = time.monotonic()
                buffer += chunk
        finally:
            if sock is not None:
                sock.close()

    def _exec_connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect(self.exec_socket)
        except OSError as e:
            sock.close()
            raise LlviewError(f"VM {self.name}: cannot reach the exec channel "
                              f"{self.exec_socket}: {e}") from e
        return sock

    def _send(self, sock: socket.socket, request: bytes, deadline: float) -> None:
        sock.settimeout(max(deadline - time.monotonic(), 1))
        try:
            sock.sendall(request)
        except TimeoutError:
            raise LlviewError(f"VM {self.name}: the guest stopped reading the exec "
                              "channel") from None

    def _decode_reply(self, tail: bytes, body: list[bytes]) -> tuple[int, bytes]:
        """'<status> <length>' and the base64 lines; a damaged reply is an error, not data."""
        try:
            rc_text, length_text = tail.split()
            rc, length = int(rc_text), int(length_text)
            output = base64.b64decode(b"".join(body), validate=True)
        except ValueError as e:  # binascii.Error is a ValueError
            raise LlviewError(f"VM {self.name}: damaged reply on the exec channel ({e})") from e
        if len(output) != length:
            raise LlviewError(f"VM {self.name}: damaged reply on the exec channel "
                              f"({len(output)} of {length} bytes)")
        return rc, output
