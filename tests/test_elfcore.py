"""The host agent on ELF cores (agents/host/memsrc.c), built in Python (tests/helpers/elfcore.py).

Physical placement is checked in raw mode (--pgd/--levels): page tables built in the dump map
one virtual page onto every probed physical page, so each READ shows which bytes the agent
found at that physical address, against a model of the core's segments. A synthetic kernel
(tests/helpers/fake_kernel.py) checks that a VMCOREINFO note in the core is used, and the scan
of the core's RAM when there is none. Corrupt cores must end the agent with a clear error.
"""

from __future__ import annotations

import random
import re
import select
import struct
import subprocess
import time
from pathlib import Path

import pytest
from helpers import agent_proc
from helpers.elfcore import EHDR, Core, Segment, build_core, note, vmcoreinfo_note
from helpers.fake_kernel import FakeKernel
from helpers.llview_wire import MAX_PAGES, C, Client
from helpers.pagetables import GuestMemory

from llview.paths import LlviewError

OK, OUTSIDE = C["LLV_OK"], C["LLV_OUTSIDE_RAM"]
PAGE = 4096
MEM_SIZE = 16 << 20
HIGH = 1 << 32          # a segment above 4 GiB, as a q35 guest with > 2.75 GiB has
PROBE_BASE = 0xFFFF888000000000  # VA of physical address pa: PROBE_BASE + pa


def content(pa: int) -> bytes:
    return (struct.pack("<Q", pa) + b"llview-elf-page!") * (PAGE // 24) + b"\xee" * (PAGE % 24)


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> tuple[str, bytes]:
    agent_proc.build()
    path = tmp_path_factory.mktemp("key") / "key.bin"
    return str(path), agent_proc.write_key(path)


class Layout:
    """16 MiB of guest RAM with page tables, cut into kdump-like segments, and the model of
    what each physical page of the resulting core holds."""

    def __init__(self) -> None:
        mem = GuestMemory(MEM_SIZE, 4, table_base=0x100000)
        self.high = b"".join(content(HIGH + i) for i in range(0, 2 << 20, PAGE))
        # Probe every page around each boundary, and a spread of pages in between.
        edges = [0, 0x1000, 0x5000, 0x9F000, 0xA0000, 0xFF000, 0x100000, 0x7FF000, 0x800000,
                 0x8FF000, 0x900000, 0xBFF000, 0xC00000, 0xFFF000, MEM_SIZE, HIGH - PAGE, HIGH,
                 HIGH + (2 << 20) - PAGE, HIGH + (2 << 20)]
        rng = random.Random(5)
        self.probes = sorted(set(edges + [rng.randrange(0, MEM_SIZE // PAGE) * PAGE
                                          for _ in range(150)]
                                 + [HIGH + rng.randrange(512) * PAGE for _ in range(20)]))
        for pa in self.probes:
            mem.map(PROBE_BASE + pa, pa)
        tables = range(0x100000, mem.next_table, PAGE)
        for pa in range(0, MEM_SIZE, PAGE):
            if pa not in tables:
                mem.fill(pa, content(pa))
        self.mem, self.root = mem, mem.root
        ram = bytes(mem.mem)
        # Physical order: 0x1000-0x5800 and 0x5800-0x9fc00 share a page (0x5000); the end
        # 0x9fc00 is not page-aligned (as /proc/iomem's first "System RAM" range); a hole
        # 0x800000-0x900000; p_memsz beyond p_filesz from 0xc00000; 2 MiB at 4 GiB.
        # File order differs from physical order.
        self.segments = [
            Segment(HIGH, self.high),
            Segment(0x100000, ram[0x100000:0x800000]),
            Segment(0x900000, ram[0x900000:0xC00000], memsz=0x700000),
            Segment(0x5800, ram[0x5800:0x9FC00]),
            Segment(0x1000, ram[0x1000:0x5800]),
        ]

    def expected(self, pa: int) -> bytes | None:
        ram = self.mem.mem
        if 0x1000 <= pa < 0x9F000 or 0x100000 <= pa < 0x800000 or 0x900000 <= pa < 0xC00000:
            return bytes(ram[pa:pa + PAGE])
        if pa == 0x9F000:
            return bytes(ram[pa:0x9FC00]) + bytes(0x400)
        if 0xC00000 <= pa < 0x1000000:
            return bytes(PAGE)
        if HIGH <= pa < HIGH + len(self.high):
            return self.high[pa - HIGH:pa - HIGH + PAGE]
        return None


@pytest.fixture(scope="module")
def layout() -> Layout:
    return Layout()


def write(tmp_path: Path, core: Core | bytes, name: str = "core.elf") -> Path:
    path = tmp_path / name
    path.write_bytes(core.image if isinstance(core, Core) else core)
    return path


def read_all(client: Client, addresses: list[int]) -> list[tuple[int, bytes | None]]:
    out = []
    for i in range(0, len(addresses), MAX_PAGES):
        out += client.read(addresses[i:i + MAX_PAGES])
    return out


@pytest.mark.parametrize("xnum", [False, True], ids=["e_phnum", "PN_XNUM"])
def test_segments_land_at_their_physical_addresses(tmp_path, key, layout, xnum):
    core = build_core(layout.segments, notes=note(b"CORE", 1, bytes(336)), xnum=xnum)
    path = write(tmp_path, core)
    agent = agent_proc.Agent(["--image", str(path), "--pgd", hex(layout.root), "--levels", "4",
                              "--key-file", key[0]])
    try:
        client = Client(agent.port, key[1])
        replies = read_all(client, [PROBE_BASE + pa for pa in layout.probes])
        client.close()
    finally:
        err = agent.stop()
    assert "ELF core, 5 PT_LOAD segments" in err and "no VMCOREINFO note" in err
    seen_outside = seen_zero = 0
    for pa, (status, data) in zip(layout.probes, replies, strict=True):
        want = layout.expected(pa)
        if want is None:
            assert status == OUTSIDE, f"physical {pa:#x} is in no segment"
            seen_outside += 1
        else:
            assert (status, data) == (OK, want), f"physical {pa:#x}"
            seen_zero += want == bytes(PAGE)
    assert seen_outside >= 8 and seen_zero >= 2  # the test reached gaps and the zero tail


def test_raw_image_still_served_as_before(tmp_path, key, layout):
    """A file without the ELF magic is a raw image: offset == physical address."""
    path = write(tmp_path, bytes(layout.mem.mem), "raw.img")
    agent = agent_proc.Agent(["--image", str(path), "--pgd", hex(layout.root), "--levels", "4",
                              "--key-file", key[0]])
    try:
        client = Client(agent.port, key[1])
        probes = [0x5000, 0x9F000, 0x800000, 0xC00000]
        replies = client.read([PROBE_BASE + pa for pa in probes])
        client.close()
    finally:
        err = agent.stop()
    assert "raw image, 16 MiB" in err
    assert replies == [(OK, bytes(layout.mem.mem[pa:pa + PAGE])) for pa in probes]


# ---- a synthetic kernel in a core: the VMCOREINFO note, or the scan -------------------

def kernel_ram() -> tuple[GuestMemory, FakeKernel, str, str]:
    """Synthetic kernel RAM; its real note text and the stale one (FakeKernel.build)."""
    mem = GuestMemory(MEM_SIZE, 4, table_base=0x900000)
    kernel = FakeKernel()
    kernel.build(mem)
    real = bytes(mem.mem[0x302000:0x303000]).split(b"\0")[0].decode()
    stale = bytes(mem.mem[0x301000:0x302000]).split(b"\0")[0].decode()
    return mem, kernel, real, stale


def kernel_core(mem: GuestMemory, notes: bytes = b"") -> Core:
    ram = bytes(mem.mem)
    return build_core([Segment(0x100000, ram[0x100000:]), Segment(0, ram[:0xA0000])], notes)


def check_kernel_served(agent, kernel: FakeKernel, key: bytes) -> None:
    assert f"release {kernel.release}, KASLR slide {kernel.slide:#x}" in agent.ready_line
    client = Client(agent.port, key)
    (init_task,) = client.syms(["init_task"])
    assert client.read_bytes(init_task, 15) == b"init-task-bytes"
    assert client.info()["page_offset_base"] == kernel.page_offset_base_value
    client.close()


def test_vmcoreinfo_note_is_used_without_scanning(tmp_path, key):
    mem, kernel, real, _ = kernel_ram()
    mem.fill(0x300000, bytes(0x3000))  # no note text left in RAM: only the ELF note can work
    path = write(tmp_path, kernel_core(mem, notes=note(b"CORE", 1, bytes(336))
                                       + vmcoreinfo_note(real + "\n")))
    agent = agent_proc.Agent(["--image", str(path), "--key-file", key[0]])
    try:
        check_kernel_served(agent, kernel, key[1])
    finally:
        err = agent.stop()
    assert "VMCOREINFO note" in err and "VMCOREINFO from the dump's ELF note" in err


def test_without_a_note_the_cores_ram_is_scanned(tmp_path, key):
    """The stale and the real note sit in RAM at physical 0x301000/0x302000, which is not
    their file offset in the core: the reported address proves the scan maps offsets back."""
    mem, kernel, _, _ = kernel_ram()
    core = kernel_core(mem)
    assert core.data_offset[1] + 0x302000 != 0x302000
    agent = agent_proc.Agent(["--image", str(write(tmp_path, core)), "--key-file", key[0]])
    try:
        check_kernel_served(agent, kernel, key[1])
    finally:
        err = agent.stop()
    assert "no VMCOREINFO note" in err and "VMCOREINFO at physical 0x302000" in err


def test_an_unusable_note_falls_back_to_the_scan(tmp_path, key):
    mem, kernel, _, stale = kernel_ram()
    path = write(tmp_path, kernel_core(mem, notes=vmcoreinfo_note(stale + "\n")))
    agent = agent_proc.Agent(["--image", str(path), "--key-file", key[0]])
    try:
        check_kernel_served(agent, kernel, key[1])
    finally:
        err = agent.stop()
    assert "warning: the dump's VMCOREINFO note: init_top_pgt" in err
    assert "VMCOREINFO at physical 0x302000" in err


def test_a_dump_without_a_kernel_fails_at_once(tmp_path, key):
    """A dump never changes: no waiting for a kernel to boot (--wait is for live RAM)."""
    mem, _, _, _ = kernel_ram()
    mem.fill(0x300000, bytes(0x3000))
    path = write(tmp_path, kernel_core(mem))
    began = time.monotonic()
    with pytest.raises(LlviewError, match="no VMCOREINFO note in guest RAM"):
        agent_proc.Agent(["--image", str(path), "--key-file", key[0], "--wait", "60"])
    assert time.monotonic() - began < 10


# ---- corrupt cores: a clear error, never a crash ------------------------------------

def small_core(**kw) -> Core:
    return build_core([Segment(0, content(0) * 16), Segment(0x20000, content(0x20000) * 16)],
                      **kw)


def run_agent(key: str, path: Path, *extra: str) -> tuple[int | None, str]:
    """Runs the agent in raw mode on path: (exit status, stderr), or (None, stderr) when it
    came up and served (then it was stopped)."""
    proc = subprocess.Popen([str(agent_proc.AGENT), "--image", str(path), "--pgd", "0",
                             "--levels", "4", "--key-file", key, "--listen", "127.0.0.1:0",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    if ready and proc.stdout.readline().startswith("llview-agent ready"):
        proc.terminate()
        return None, proc.communicate(timeout=10)[1]
    _, err = proc.communicate(timeout=20)
    return proc.returncode, err


def mutated(fn) -> bytes:
    core = small_core()
    fn(core)
    return bytes(core.image)


U64 = (1 << 64) - 1
CORRUPT = {
    "truncated-header": (lambda: bytes(small_core().image[:40]),
                         r"truncated ELF header: 40 of 64 bytes"),
    "headers-past-eof": (lambda: bytes(small_core().image[:EHDR.size + 70]),
                         r"2 program headers at offset 64 end past the end of the file "
                         r"\(134 bytes\): truncated\?"),
    "segment-past-eof": (lambda: bytes(small_core().image[:-10]),
                         r"program header 1 \(PT_LOAD at physical 0x20000\): its 65536 bytes "
                         r"at file offset \d+ end past the end of the file .*truncated dump\?"),
    "absurd-filesz": (lambda: mutated(lambda c: c.set_phdr(0, p_filesz=U64, p_memsz=U64)),
                      r"program header 0 .* end past the end of the file"),
    "offset-overflow": (lambda: mutated(lambda c: c.set_phdr(1, p_offset=U64 - 0xFFF)),
                        r"program header 1 .* at file offset 18446744073709547520 end past"),
    "other-type-past-eof": (lambda: mutated(lambda c: c.set_phdr(0, p_type=0x6474E550,
                                                                 p_offset=U64 - 10)),
                            r"program header 0 \(type 0x6474e550\): its 65536 bytes at file "
                            r"offset 18446744073709551605 end past the end of the file"),
    "filesz-above-memsz": (lambda: mutated(lambda c: c.set_phdr(0, p_memsz=0x100)),
                           r"p_filesz 65536 exceeds p_memsz 256"),
    "overlap": (lambda: mutated(lambda c: c.set_phdr(1, p_paddr=0xF000)),
                r"PT_LOAD segments at physical 0x0 \(65536 bytes\) and 0xf000 overlap"),
    "beyond-52-bits": (lambda: mutated(lambda c: c.set_phdr(1, p_paddr=(1 << 52) - 0x1000)),
                       r"ends beyond the 52-bit physical address space"),
    "paddr-overflow": (lambda: mutated(lambda c: c.set_phdr(1, p_paddr=U64 - 0xFFF)),
                       r"ends beyond the 52-bit physical address space"),
    "not-a-core": (lambda: bytes(small_core(etype=2).image), r"ELF type 2 is not a core dump"),
    "not-x86-64": (lambda: bytes(small_core(machine=183).image), r"ELF machine 183 is not x86"),
    "elf32": (lambda: mutated(lambda c: c.image.__setitem__(4, 1)),
              r"ELF class 1, data 1: only little-endian ELF64"),
    "no-pt-load": (lambda: bytes(build_core([], notes=note(b"CORE", 1, bytes(8))).image),
                   r"no PT_LOAD segment: it holds no guest memory"),
    "xnum-without-section": (lambda: (lambda c: (struct.pack_into("<Q", c.image, 40, 0),
                                                 bytes(c.image))[1])(small_core(xnum=True)),
                             r"e_phnum is PN_XNUM but section header 0"),
    "compressed-kdump": (lambda: b"KDUMP   " + bytes(8192),
                         r"a compressed kdump file .*makedumpfile -E"),
    "flattened": (lambda: b"makedumpfile\0\0\0\0" + bytes(8192),
                  r"makedumpfile's flattened format"),
}


def note_overrun() -> bytes:
    core = small_core(notes=vmcoreinfo_note("OSRELEASE=x\n"))
    notes_at = core.phdr_offset[-1] + 56
    struct.pack_into("<I", core.image, notes_at, 0xFFFFFFF0)  # n_namesz
    return bytes(core.image)


CORRUPT["note-overrun"] = (note_overrun, r"program header 0 \(PT_NOTE\): the note at offset "
                           r"\d+ \(name 4294967280 bytes, data 12 bytes\) runs past its segment")


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_core_is_a_clear_error(tmp_path, key, case):
    make, message = CORRUPT[case]
    status, err = run_agent(key[0], write(tmp_path, make()))
    assert status == 1, f"expected a clean error exit, got {status}: {err}"
    assert "llview-agent: error: " in err
    assert re.search(message, err), err


def test_ram_size_does_not_apply_to_a_core(tmp_path, key):
    status, err = run_agent(key[0], write(tmp_path, small_core()), "--ram-size", "64K")
    assert status == 1 and "--ram-size does not apply to an ELF core" in err


def test_the_small_core_itself_is_served(tmp_path, key):
    """The base of the corruption cases is valid: each error above comes from its one flaw."""
    status, err = run_agent(key[0], write(tmp_path, small_core()))
    assert status is None, err


def test_random_damage_never_crashes_the_agent(tmp_path, key):
    """Random bytes over the headers and random truncations: the agent either serves or
    exits with status 1 and an error line; never a signal."""
    rng = random.Random(11)
    base = bytes(small_core(notes=note(b"CORE", 1, bytes(40)) + vmcoreinfo_note("X=1\n")).image)
    header_end = 64 + 3 * 56 + 120
    outcomes = {"served": 0, "refused": 0}
    for i in range(80):
        image = bytearray(base)
        if i % 4 == 0:
            image = image[:rng.randrange(0, len(image))]
        else:
            for _ in range(rng.randrange(1, 6)):
                image[rng.randrange(header_end)] = rng.randrange(256)
        status, err = run_agent(key[0], write(tmp_path, bytes(image), f"fuzz{i}.elf"))
        if status is None:
            outcomes["served"] += 1
        else:
            assert status == 1 and "llview-agent: error: " in err, (i, status, err)
            outcomes["refused"] += 1
    assert outcomes["served"] and outcomes["refused"]
