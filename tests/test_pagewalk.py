"""The agent's page-table walker (agents/host/pagewalk.c) on synthetic guest memory.

The memory is built in Python with real x86-64 entries (tests/helpers/pagetables.py) and the
walker is driven through ctypes on build/libllview-pagewalk.so; every expected address comes
from how the test laid the memory out.
"""

from __future__ import annotations

import ctypes
import random

import pytest
from helpers import agent_proc
from helpers.llview_wire import C
from helpers.pagetables import GB1, LARGE_PAT, MB2, PAGE, PS, GuestMemory, canonical

OK, UNMAPPED, NONCANONICAL = C["LLV_OK"], C["LLV_UNMAPPED"], C["LLV_NONCANONICAL"]
USER, OUTSIDE = C["LLV_USER_ADDRESS"], C["LLV_OUTSIDE_RAM"]
MEM_SIZE = 16 << 20


@pytest.fixture(scope="module")
def walker():
    agent_proc.build()
    lib = ctypes.CDLL(str(agent_proc.PAGEWALK_LIB))
    lib.llv_translate_flat.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                                       ctypes.c_int, ctypes.c_uint64,
                                       ctypes.POINTER(ctypes.c_uint64)]
    lib.llv_translate_flat.restype = ctypes.c_int

    def translate(mem: GuestMemory, va: int, root: int | None = None,
                  levels: int | None = None) -> tuple[int, int | None]:
        buf = (ctypes.c_uint8 * len(mem.mem)).from_buffer(mem.mem)
        pa = ctypes.c_uint64(0)
        status = lib.llv_translate_flat(ctypes.addressof(buf), len(mem.mem),
                                        mem.root if root is None else root,
                                        levels or mem.levels, va, ctypes.byref(pa))
        del buf
        return status, (pa.value if status == OK else None)

    return translate


KERNEL_4 = 0xFFFFFFFF81000000        # __START_KERNEL_map + 16 MiB (4-level)
DIRECT_4 = 0xFFFF888000000000        # page_offset_base, 4-level
DIRECT_5 = 0xFF11000000000000        # page_offset_base, 5-level
KERNEL_5 = 0xFFFFFFFF81000000


@pytest.mark.parametrize("levels", [4, 5])
def test_4k_2m_1g_pages_translate(walker, levels):
    mem = GuestMemory(MEM_SIZE, levels)
    direct = DIRECT_4 if levels == 4 else DIRECT_5
    mem.map(KERNEL_4, 0x7FF000)                                   # 4 KiB
    mem.map(KERNEL_4 + MB2, 0x400000, MB2, extra=LARGE_PAT)       # 2 MiB, PAT bit set
    mem.map(direct, 0, GB1)                                       # 1 GiB at physical 0
    for offset in (0, 1, 0x123, PAGE - 1):
        assert walker(mem, KERNEL_4 + offset) == (OK, 0x7FF000 + offset)
    for offset in (0, 0x1234, MB2 - 1):
        assert walker(mem, KERNEL_4 + MB2 + offset) == (OK, 0x400000 + offset)
    for offset in (0, 0x5000, MEM_SIZE - 1):
        assert walker(mem, direct + offset) == (OK, offset)
    # Past the end of RAM inside the same 1 GiB page: the mapping exists, the RAM does not.
    assert walker(mem, direct + MEM_SIZE) == (OUTSIDE, None)
    assert walker(mem, direct + GB1 - 1) == (OUTSIDE, None)
    # Neighbours of each mapping are unmapped.
    assert walker(mem, KERNEL_4 + PAGE) == (UNMAPPED, None)
    assert walker(mem, KERNEL_4 - PAGE) == (UNMAPPED, None)
    assert walker(mem, KERNEL_4 + 2 * MB2) == (UNMAPPED, None)
    assert walker(mem, direct + GB1) == (UNMAPPED, None)


@pytest.mark.parametrize("levels,shift", [(4, s) for s in (39, 30, 21, 12)]
                         + [(5, s) for s in (48, 39, 30, 21, 12)])
def test_non_present_entry_at_each_level(walker, levels, shift):
    mem = GuestMemory(MEM_SIZE, levels)
    va = KERNEL_4 + 0x3000
    mem.map(va, 0x9000)
    mem.map(va + PAGE, 0xA000)  # a sibling that must stay mapped unless a shared level goes
    assert walker(mem, va) == (OK, 0x9000)
    mem.unmap_entry(va, shift)  # P cleared, address bits left behind
    assert walker(mem, va) == (UNMAPPED, None)
    assert walker(mem, va + 5)[0] == UNMAPPED
    expected_sibling = (UNMAPPED, None) if shift > 12 else (OK, 0xA000)
    assert walker(mem, va + PAGE) == expected_sibling


def test_ps_bit_ignored_where_large_pages_do_not_exist(walker):
    """PS in a PML4/PML5 entry is reserved and bit 7 of a 4 KiB PTE is PAT: neither ends the
    walk as a large page."""
    mem = GuestMemory(MEM_SIZE, 5)
    va = KERNEL_5 + 0x5000
    mem.map(va, 0x8000, extra=PS)  # PTE with bit 7 (PAT) set
    for shift in (48, 39):
        table, index = mem.table_for(va, shift)
        mem.set_entry(table, index, mem.entry(table, index) | PS)
    assert walker(mem, va + 0x10) == (OK, 0x8010)


@pytest.mark.parametrize("levels,va,status", [
    (4, 0x0000800000000000, NONCANONICAL),   # first non-canonical above user space
    (4, 0xFFFF7FFFFFFFFFFF, NONCANONICAL),   # last non-canonical below the kernel half
    (4, 0xFF11000000000000, NONCANONICAL),   # a 5-level kernel address under 4 levels
    (5, 0x0100000000000000, NONCANONICAL),
    (5, 0xFEFFFFFFFFFFFFFF, NONCANONICAL),
    (4, 0x00007FFFFFFFF000, USER),
    (4, 0x0000000000400000, USER),
    (5, 0x00FFFFFFFFFFF000, USER),          # canonical user address only with LA57
    (5, 0, USER),
])
def test_noncanonical_and_user_addresses(walker, levels, va, status):
    mem = GuestMemory(MEM_SIZE, levels)
    assert walker(mem, va) == (status, None)


def test_5level_kernel_addresses_use_the_pml5_index(walker):
    """Two addresses that differ only in bits 56..48 must land in different PML5 slots."""
    mem = GuestMemory(MEM_SIZE, 5)
    a, b = DIRECT_5, DIRECT_5 + (1 << 48)
    mem.map(a, 0x200000, MB2)
    mem.map(b, 0x600000, MB2)
    assert walker(mem, a + 0x10) == (OK, 0x200010)
    assert walker(mem, b + 0x10) == (OK, 0x600010)
    # The same memory read as 4-level: the root becomes the PML4 and a is non-canonical.
    assert walker(mem, a, levels=4) == (NONCANONICAL, None)


def test_tables_and_pages_outside_ram(walker):
    mem = GuestMemory(MEM_SIZE, 4)
    va = KERNEL_4
    mem.map(va, 0x5000)
    # A PD entry pointing at a page table beyond RAM.
    table, index = mem.table_for(va, 21)
    mem.set_entry(table, index, (MEM_SIZE + 0x10000) | 0x63)
    assert walker(mem, va) == (OUTSIDE, None)
    # A 4 KiB leaf beyond RAM (address bits up to 51 in use).
    mem2 = GuestMemory(MEM_SIZE, 4)
    mem2.map(va, 0x000F_FFFF_FFFF_F000)
    assert walker(mem2, va) == (OUTSIDE, None)
    # A root outside RAM.
    assert walker(mem2, va, root=MEM_SIZE) == (OUTSIDE, None)


def test_random_mappings_match_a_model(walker):
    """Hundreds of random 4 KiB / 2 MiB mappings: every mapped byte translates to where the
    model says, every other probed address is unmapped."""
    rng = random.Random(1234)
    mem = GuestMemory(MEM_SIZE, 5, table_base=0x100000)
    model: dict[int, tuple[int, int]] = {}  # va page -> (pa, size)
    for _ in range(400):
        if rng.random() < 0.2:
            va = canonical(rng.randrange(1 << 56, 1 << 57) & ~(MB2 - 1), 5)
            pa, size = rng.randrange(1, MEM_SIZE // MB2) * MB2, MB2
        else:
            va = canonical(rng.randrange(1 << 56, 1 << 57) & ~(PAGE - 1), 5)
            pa, size = rng.randrange(0x800, MEM_SIZE // PAGE) * PAGE, PAGE
        # Skip a va that overlaps an existing mapping of the other size.
        if any(v <= va < v + s or va <= v < va + size for v, (_, s) in model.items()):
            continue
        try:
            mem.map(va, pa, size)
        except AssertionError:
            break
        model[va] = (pa, size)
    assert len(model) > 300
    for va, (pa, size) in model.items():
        off = rng.randrange(size)
        assert walker(mem, va + off) == (OK, pa + off)
        probe = va + size
        if not any(v <= probe < v + s for v, (_, s) in model.items()):
            assert walker(mem, probe)[0] == UNMAPPED
