"""Builds the monitored guest's initramfs: static busybox, llview's init and the known daemons.

The archive (cpio "newc", gzip) is written by Python, so device nodes need no root and the bytes
are reproducible; it is cached under cache_dir()/vm-images/ keyed by the hash of its contents.
Per-guest files (kernel modules, the agent's key, its init commands) go into a second archive,
build_extra_archive(), that the kernel unpacks over the first: the shared image never holds
anything private to one guest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import stat
import struct
import sys
from importlib import resources
from pathlib import Path

from llview.paths import LlviewError, cache_dir

# Daemons every guest runs, by file name; comm is the name cut to 15 characters (TASK_COMM_LEN).
# Each is a busybox shell script, so its comm is its own name; children show real ppids.
KNOWN_DAEMONS: dict[str, str] = {
    "llv-sleeper": "while :; do sleep 100000000; done\n",
    "llv-watcher": "while :; do sleep 100000000; done\n",
    # Two forked children (same comm, ppid = the worker) and their sleeps.
    "llv-worker": ("for n in 1 2; do ( while :; do sleep 100000000; done ) & done\n"
                   "wait\n"),
    # Longer than 15 characters: the kernel keeps "llv-netmon-daem".
    "llv-netmon-daemon": "while :; do sleep 100000000; done\n",
}
TASK_COMM_LEN = 16

# The confined workload's init (PID 1 of its own pid, mount, net and uts namespaces, started by
# the guest init with `unshare` when the kernel command line says llview.confine=1). The known
# daemons run under it; the exec server and the in-kernel agent stay outside.
CONTAINER_INIT = "llv-container"
CONTAINER_HOSTNAME = "llview-container"
CONTAINER_READY = "/run/llview-container-ready"
_CONTAINER_SCRIPT = f"""#!/bin/sh
# llview container init: PID 1 of the confined workload's pid, mount, net and uts namespaces.
hostname {CONTAINER_HOSTNAME}
ip link set lo up 2>/dev/null
while read -r daemon; do
    if [ -x "/bin/$daemon" ]; then
        "/bin/$daemon" </dev/null >/dev/null 2>&1 &
    fi
done < /etc/llview/daemons
# /run is the same tmpfs outside: the guest init waits for this before counting tasks.
touch {CONTAINER_READY}
while :; do wait; sleep 100000000; done
"""
# Where the guest init looks for the per-guest agent commands (see guest_init.sh).
AGENT_INIT_PATH = "/etc/llview/agent-init.sh"


def known_comms() -> list[str]:
    """The comm values of the known daemons as the guest kernel stores them."""
    return [name[: TASK_COMM_LEN - 1] for name in KNOWN_DAEMONS]


def find_busybox() -> Path:
    for candidate in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if candidate.is_file():
            if _has_interpreter(candidate):
                raise LlviewError(f"{candidate} is dynamically linked; the guest needs a static "
                                  "busybox (apt-get install busybox-static)")
            return candidate
    found = shutil.which("busybox")
    if found and not _has_interpreter(Path(found)):
        return Path(found)
    raise LlviewError("no static busybox found (apt-get install busybox-static)")


def _has_interpreter(elf: Path) -> bool:
    """True when the ELF file asks for a dynamic loader (a PT_INTERP program header)."""
    with elf.open("rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:
            raise LlviewError(f"{elf} is not a 64-bit ELF executable")
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == 3 for i in range(phnum))


class _Cpio:
    """A minimal writer for the cpio "newc" format the kernel unpacks."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.inode = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               nlink: int = 1) -> None:
        encoded = name.encode() + b"\0"
        fields = [self.inode, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(encoded), 0]
        self.inode += 1
        self.out.write(b"070701" + b"".join(b"%08X" % v for v in fields) + encoded)
        self._pad()
        self.out.write(data)
        self._pad()

    def _pad(self) -> None:
        self.out.write(b"\0" * (-self.out.tell() % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.out.getvalue()


def _data_file(name: str) -> bytes:
    return resources.files("llview.vm").joinpath(name).read_bytes()


def init_script() -> bytes:
    return _data_file("guest_init.sh")


def build_archive(busybox: Path) -> bytes:
    """The uncompressed cpio archive of the guest's root file system."""
    archive = _Cpio()
    for d in ("bin", "dev", "etc", "etc/llview", "proc", "root", "run", "sbin", "sys", "tmp",
              "usr", "usr/bin", "usr/sbin"):
        archive.directory(d)
    archive.char_device("dev/console", 5, 1)
    archive.char_device("dev/null", 1, 3)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    archive.symlink("bin/sh", "busybox")
    archive.file("init", init_script(), 0o755)
    for name, body in KNOWN_DAEMONS.items():
        archive.file(f"bin/{name}", f"#!/bin/sh\n# llview known daemon {name}\n{body}".encode(),
                     0o755)
    archive.file(f"bin/{CONTAINER_INIT}", _CONTAINER_SCRIPT.encode(), 0o755)
    archive.file("etc/llview/exec-server.awk", _data_file("exec_server.awk"))
    archive.file("etc/llview/run-request", _data_file("run_request.sh"), 0o755)
    archive.file("etc/llview/daemons", "".join(f"{n}\n" for n in KNOWN_DAEMONS).encode())
    return archive.finish()


def build_initramfs(quiet: bool = False) -> Path:
    """Path of the gzip-compressed initramfs, built once per distinct content."""
    raw = build_archive(find_busybox())
    digest = hashlib.sha256(raw).hexdigest()[:16]
    images = cache_dir() / "vm-images"
    images.mkdir(parents=True, exist_ok=True)
    path = images / f"initramfs-{digest}.cpio.gz"
    if not path.exists():
        if not quiet:
            print(f"llview: building guest initramfs {path.name}", file=sys.stderr, flush=True)
        tmp = path.with_suffix(f".tmp{id(raw)}")
        tmp.write_bytes(gzip.compress(raw, compresslevel=6, mtime=0))
        tmp.replace(path)
    return path


def build_extra_archive(files: dict[str, Path | tuple[Path, int]],
                        blobs: dict[str, tuple[bytes, int]] | None = None) -> bytes:
    """A cpio archive (uncompressed) putting host files and in-memory blobs at guest paths,
    parent directories too. A file keeps its host mode unless given as (path, mode); a blob is
    (bytes, mode), for contents that must never touch the host disk on their own (a key).

    The kernel unpacks concatenated archives in order, so this can follow the cached base image.
    """
    entries: dict[str, tuple[bytes, int]] = {}
    for guest_path, spec in files.items():
        host, mode = spec if isinstance(spec, tuple) else (Path(spec), None)
        host = Path(host)
        if not host.is_file():
            raise LlviewError(f"file to copy into the guest {host} does not exist")
        entries[guest_path] = (host.read_bytes(),
                               host.stat().st_mode & 0o777 if mode is None else mode)
    entries.update(blobs or {})
    archive = _Cpio()
    made: set[str] = set()
    for guest_path, (data, mode) in sorted(entries.items()):
        parts = guest_path.strip("/").split("/")
        if not guest_path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise LlviewError(f"guest path {guest_path!r} must be absolute and plain "
                              "(no '.', '..' or empty parts)")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in made:
                archive.directory(directory)
                made.add(directory)
        archive.file("/".join(parts), data, mode & 0o777)
    return archive.finish()
