"""The in-kernel agent (agents/kmod): build llview_agent.ko for a kernel profile, and say what
the guest must load (which .ko files, in which order) and run to start it.

Use from `llview vm start --agent kernel`:

    agent = guest_agent(profile)            # builds the module once per profile + source hash
    for guest_path, (host_path, mode) in agent.files.items(): add to the initramfs
    add the 32-byte key as agent.key_path (mode 0600) to the initramfs
    run agent.init_script in the guest init (after /proc, /sys and devtmpfs are mounted)

The script loads the NIC and crypto modules, then llview_agent.ko, writes the key file into the
write-once device /dev/llview-key, wipes and deletes the file, and brings eth0 up as QEMU user
networking expects (10.0.2.15/24); the agent listens on AGENT_PORT in the guest.

Shared memory (`--shm`): create the region file with create_shm_region(path) and add
ivshmem_qemu_args(path) to QEMU's command line. The module binds the guest's ivshmem device by
itself (no extra guest module, no init change) and serves the region next to TCP; the IDS then
uses `--agent shm:PATH`.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from llview.kernel.profile import Profile
from llview.paths import AGENTS_DIR, PROTOCOL_DIR, LlviewError, cache_dir

MODULE_NAME = "llview_agent"
KEY_DEVICE = "/dev/llview-key"
AGENT_PORT = 7070
GUEST_MODULE_DIR = "/lib/llview-modules"
GUEST_KEY_PATH = "/etc/llview/agent.key"
GUEST_ADDRESS = "10.0.2.15/24"  # QEMU user networking's guest address

# What the guest loads before the agent, by module name ('-' and '_' are the same).
# The NIC: virtio_pci is the bus driver (not a symbol dependency of virtio_net, so named here).
NETWORK_MODULES = ("virtio_pci", "virtio_net")
# gcm(aes) from the generic templates; hmac(sha256) is built into Debian's kernels.
CRYPTO_MODULES = ("gcm", "ctr", "ghash_generic")
# Faster AES-GCM where the CPU has AES-NI/PCLMULQDQ; the kernel picks it by priority. Loading
# may fail on a CPU without them, and that is fine.
OPTIONAL_MODULES = ("aesni_intel", "ghash_clmulni_intel")

SHM_REGION_SIZE = 1 << 20  # LLV_SHM_SIZE in protocol/llview_shm.h (checked by the tests)

_SOURCE_DIR = AGENTS_DIR / "kmod"
# What the module compiles from protocol/: the headers, and the request core shared with the
# host agent (agents/kmod/core.c includes llview_core.c).
_PROTOCOL_FILES = ("llview_proto.h", "llview_shm.h", "llview_compat.h", "llview_core.h",
                   "llview_core.c")
# The build directory mirrors the repository (agents/kmod next to protocol/), so the Kbuild
# file's -I$(src)/../../protocol holds in both.
_MODULE_SUBDIR = "agents/kmod"


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"llview: {msg}", file=sys.stderr, flush=True)


# ---- building ------------------------------------------------------------------------------


def headers_dir(profile: Profile, quiet: bool = False) -> Path:
    """/usr/src/linux-headers-<release>, installed with apt-get when missing.

    The apt package pulls linux-kbuild-X.Y and the compiler the kernel was built with (gcc-12
    on Debian 12). Its Module.symvers must equal the profile's, or the module's symbol CRCs
    would not match the guest kernel.
    """
    kdir = Path("/usr/src") / f"linux-headers-{profile.release}"
    if not (kdir / "Makefile").is_file():
        package = f"linux-headers-{profile.release}"
        _say(f"installing {package} with apt-get (needed to build the kernel agent)", quiet)
        cmd = ["apt-get", "install", "-y", "-q", package]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0 or not (kdir / "Makefile").is_file():
            detail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise LlviewError(f"cannot install {package} (needed to build the kernel agent for "
                              f"{profile.release}): {detail or 'no such package'}")
    ours, theirs = kdir / "Module.symvers", profile.headers / "Module.symvers"
    if theirs.is_file() and ours.is_file() and ours.read_bytes() != theirs.read_bytes():
        raise LlviewError(f"{kdir} does not match kernel profile {profile.release} (Module.symvers "
                          "differs): the installed headers package is another build; run "
                          "`apt-get install --reinstall` for it or fetch the profile again")
    return kdir


def source_files(source_dir: Path, prefix: str) -> dict[str, bytes]:
    """A module's Kbuild, .c and .h files, keyed prefix/NAME (paths in the build directory)."""
    return {f"{prefix}/{p.name}": p.read_bytes() for p in sorted(source_dir.iterdir())
            if p.is_file() and (p.suffix in (".c", ".h") or p.name == "Kbuild")}


def _module_sources() -> dict[str, bytes]:
    """The files a build needs, by path relative to the build directory."""
    files = source_files(_SOURCE_DIR, _MODULE_SUBDIR)
    if not any(name.endswith(".c") for name in files):
        raise LlviewError(f"no kernel agent sources in {_SOURCE_DIR}")
    for name in _PROTOCOL_FILES:
        files[f"protocol/{name}"] = (PROTOCOL_DIR / name).read_bytes()
    return files


def build_external_module(profile: Profile, sources: dict[str, bytes], subdir: str,
                          module_name: str, what: str = "", strip_debug: bool = False,
                          quiet: bool = False) -> Path:
    """Builds an out-of-tree module with Kbuild against the profile's headers.

    sources maps paths relative to a private build directory to their bytes; Kbuild runs in
    its `subdir` (the one holding the Kbuild file) and must produce MODULE_NAME.ko. Cached by
    release and a hash of the sources (and strip_debug, which drops the debug info: a tenth
    of the size, for modules copied into a running guest over its slow exec line).
    """
    what = what or module_name
    if not any(name.startswith(f"{subdir}/") and name.endswith(".c") for name in sources):
        raise LlviewError(f"no C sources for {what} in {subdir}/")
    digest = hashlib.sha256()
    for name, data in sorted(sources.items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    if strip_debug:
        digest.update(b"strip-debug\0")
    out_dir = cache_dir() / "kmod" / profile.release / digest.hexdigest()[:16]
    module = out_dir / f"{module_name}.ko"
    if module.is_file():
        return module
    kdir = headers_dir(profile, quiet)
    _say(f"building {what} for {profile.release}", quiet)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir.parent))
    try:
        for name, data in sources.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_bytes(data)
        # Kbuild writes its objects next to the sources, hence the private copy.
        cmd = ["make", "-s", "-C", str(kdir), f"M={work / subdir}", "modules"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        built = work / subdir / f"{module_name}.ko"
        if done.returncode != 0 or not built.is_file():
            detail = "\n".join((done.stderr + done.stdout).strip().splitlines()[-15:])
            raise LlviewError(f"building {what} against {kdir} failed:\n{detail}")
        if strip_debug:
            stripped = subprocess.run(["objcopy", "--strip-debug", str(built)],
                                      capture_output=True, text=True, check=False)
            if stripped.returncode != 0:
                raise LlviewError(f"objcopy --strip-debug {built.name} failed: "
                                  f"{stripped.stderr.strip()}")
        vermagic = modinfo(built.read_bytes()).get("vermagic", "").split(" ")[0]
        if vermagic != profile.release:
            raise LlviewError(f"built module has vermagic {vermagic!r}, but the guest kernel is "
                              f"{profile.release!r}")
        out_dir.mkdir(exist_ok=True)
        tmp = module.with_suffix(f".ko.tmp{os.getpid()}")
        shutil.copyfile(built, tmp)
        tmp.replace(module)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return module


def build_module(profile: Profile, quiet: bool = False) -> Path:
    """Builds llview_agent.ko for the profile's kernel (cached by release and source hash)."""
    return build_external_module(profile, _module_sources(), _MODULE_SUBDIR, MODULE_NAME,
                                 what="the kernel agent", quiet=quiet)


# ---- which modules the guest loads ------------------------------------------------------------


def modinfo_entries(ko: bytes) -> list[tuple[str, str]]:
    """The key=value strings of an ELF module's .modinfo section, in order (keys repeat)."""
    if ko[:4] != b"\x7fELF" or ko[4] != 2:
        raise LlviewError("not a 64-bit ELF kernel module")
    shoff, = struct.unpack_from("<Q", ko, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        base = shoff + index * shentsize
        name, = struct.unpack_from("<I", ko, base)
        offset, size = struct.unpack_from("<QQ", ko, base + 0x18)
        return name, offset, size

    _, names_at, _ = section(shstrndx)
    for i in range(shnum):
        name, offset, size = section(i)
        if ko[names_at + name: ko.index(b"\0", names_at + name)] == b".modinfo":
            entries = []
            for entry in ko[offset: offset + size].split(b"\0"):
                key, sep, value = entry.decode(errors="replace").partition("=")
                if sep:
                    entries.append((key, value))
            return entries
    return []


def modinfo(ko: bytes) -> dict[str, str]:
    """The first value of each .modinfo key (vermagic, depends, license, ...)."""
    info: dict[str, str] = {}
    for key, value in modinfo_entries(ko):
        info.setdefault(key, value)
    return info


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _module_name(path: Path) -> str:
    return _norm(path.name.split(".ko", 1)[0])


@dataclass
class _ModuleIndex:
    files: dict[str, Path] = field(default_factory=dict)  # name -> .ko / .ko.xz / .ko.zst
    builtin: set[str] = field(default_factory=set)


def _index(modules_dir: Path) -> _ModuleIndex:
    index = _ModuleIndex()
    for path in modules_dir.rglob("*.ko*"):
        if path.name.endswith((".ko", ".ko.xz", ".ko.zst")):
            index.files.setdefault(_module_name(path), path)
    builtin = modules_dir / "modules.builtin"
    if builtin.is_file():
        index.builtin = {_module_name(Path(line.strip()))
                         for line in builtin.read_text().splitlines() if line.strip()}
    return index


def _plain_module(path: Path) -> bytes:
    """A module's bytes, decompressed (busybox insmod wants plain ELF)."""
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.zst"):
        done = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            raise LlviewError(f"cannot decompress {path} (zstd): {done.stderr.decode().strip()}")
        return done.stdout
    return data


def load_order(profile: Profile, names: tuple[str, ...] | list[str]) -> list[Path]:
    """The .ko files that load the named modules, dependencies first, from the profile's modules
    dir (built-in modules are left out; compressed ones are decompressed into the cache)."""
    index = _index(profile.modules)
    ordered: list[Path] = []
    done: set[str] = set()
    plain_dir = cache_dir() / "kmod" / profile.release / "modules"

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = _norm(name)
        if name in done or name in index.builtin:
            return
        if name in chain:
            raise LlviewError(f"module dependency cycle: {' -> '.join((*chain, name))}")
        path = index.files.get(name)
        if path is None:
            raise LlviewError(f"kernel {profile.release} has no module {name} in "
                              f"{profile.modules} (and it is not built in)")
        data = _plain_module(path)
        for dep in filter(None, modinfo(data).get("depends", "").split(",")):
            visit(dep, (*chain, name))
        if path.name.endswith(".ko"):
            ordered.append(path)
        else:
            plain_dir.mkdir(parents=True, exist_ok=True)
            plain = plain_dir / f"{name}.ko"
            if not plain.is_file():
                plain.write_bytes(data)
            ordered.append(plain)
        done.add(name)

    for wanted in names:
        visit(wanted, ())
    return ordered


@dataclass
class GuestModule:
    path: Path
    optional: bool  # a failed insmod is tolerated (CPU-specific crypto)


def guest_modules(profile: Profile) -> list[GuestModule]:
    """Every .ko the guest loads before llview_agent.ko, in order."""
    required = load_order(profile, [*NETWORK_MODULES, *CRYPTO_MODULES])
    result = [GuestModule(p, False) for p in required]
    seen = {p.name for p in required}
    index = _index(profile.modules)
    for name in OPTIONAL_MODULES:
        if _norm(name) in index.files:
            for path in load_order(profile, [name]):
                if path.name not in seen:
                    seen.add(path.name)
                    result.append(GuestModule(path, True))
    return result


# ---- what the guest runs -----------------------------------------------------------------------


@dataclass
class GuestAgent:
    """Files for the initramfs and the init commands that start the agent in the guest."""

    files: dict[str, tuple[Path, int]]  # guest path -> (host file, mode)
    init_script: str
    key_path: str = GUEST_KEY_PATH  # the caller puts the 32-byte key here, mode 0600
    port: int = AGENT_PORT


def init_script(modules: list[tuple[str, bool]], agent_module: str,
                key_path: str = GUEST_KEY_PATH, port: int = AGENT_PORT) -> str:
    """Busybox sh commands: load the modules (guest paths, optional flag), the agent, the key."""
    lines = ["# llview in-kernel agent (generated by llview/kmod.py)"]
    for path, optional in modules:
        if optional:  # absent CPU features make these fail, harmlessly
            lines.append(f"insmod {path} 2>/dev/null || true")
        else:
            lines.append(f'insmod {path} || echo "llview: cannot load {path}" >&2')
    lines += [
        f"insmod {agent_module} port={port} || echo 'llview: cannot load the agent' >&2",
        # The key goes into the write-once device, never onto a command line; then the file
        # is overwritten and removed so no copy stays in the guest's file system.
        f"if [ -c {KEY_DEVICE} ] && [ -f {key_path} ]; then",
        f"    cat {key_path} > {KEY_DEVICE} || echo 'llview: key not accepted' >&2",
        f"    dd if=/dev/zero of={key_path} bs=32 count=1 conv=notrunc 2>/dev/null",
        f"    rm -f {key_path}",
        "fi",
        "ip link set lo up",
        f"ip addr add {GUEST_ADDRESS} dev eth0",
        "ip link set eth0 up",
    ]
    return "\n".join(lines) + "\n"


def guest_agent(profile: Profile, port: int = AGENT_PORT, quiet: bool = False) -> GuestAgent:
    """Builds the agent for the profile and says what the guest needs to run it."""
    agent = build_module(profile, quiet)
    files: dict[str, tuple[Path, int]] = {}
    modules: list[tuple[str, bool]] = []
    for module in guest_modules(profile):
        guest_path = f"{GUEST_MODULE_DIR}/{module.path.name}"
        files[guest_path] = (module.path, 0o644)
        modules.append((guest_path, module.optional))
    agent_path = f"{GUEST_MODULE_DIR}/{MODULE_NAME}.ko"
    files[agent_path] = (agent, 0o644)
    return GuestAgent(files=files, init_script=init_script(modules, agent_path, port=port),
                      port=port)


# ---- the shared-memory transport ----------------------------------------------------------------


def create_shm_region(path: str | Path) -> Path:
    """Creates the region file QEMU backs the ivshmem device with: mode 0600 (QEMU itself would
    create it 0644), LLV_SHM_SIZE bytes of zeros. Refuses to reuse an existing file."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise LlviewError(f"shared-memory region {path} already exists (another guest's?)") \
            from None
    except OSError as e:
        raise LlviewError(f"cannot create shared-memory region {path}: {e.strerror}") from None
    try:
        os.ftruncate(fd, SHM_REGION_SIZE)
    finally:
        os.close(fd)
    return path


def ivshmem_qemu_args(path: str | Path, ident: str = "llvshm") -> list[str]:
    """QEMU arguments that show the region file to the guest as an ivshmem-plain PCI device
    (BAR 2 = the file), which llview_agent.ko binds and serves."""
    return ["-object", f"memory-backend-file,id={ident},size={SHM_REGION_SIZE},"
                       f"mem-path={path},share=on",
            "-device", f"ivshmem-plain,memdev={ident}"]
