"""Synthetic x86-64 guest memory with real page-table entries, built in Python.

Entries use the architectural bits (Intel SDM vol. 3, 4.5): P (0), R/W (1), A (5), D (6),
PS (7) for a 2 MiB / 1 GiB page, PAT (12) in a large-page entry, NX (63); the address sits in
bits 51..12. Tables come from a bump allocator in the image itself, so the image is exactly
what a guest's RAM would hold.
"""

from __future__ import annotations

import struct

P, RW, ACCESSED, DIRTY, PS, LARGE_PAT, NX = 1 << 0, 1 << 1, 1 << 5, 1 << 6, 1 << 7, 1 << 12, 1 << 63
PAGE, MB2, GB1 = 1 << 12, 1 << 21, 1 << 30
LEVEL_SHIFTS = {4: [39, 30, 21, 12], 5: [48, 39, 30, 21, 12]}


def canonical(va: int, levels: int) -> int:
    """Sign-extends a virtual address from bit 47 (4-level) or 56 (5-level)."""
    bits = 48 if levels == 4 else 57
    va &= (1 << bits) - 1
    return va | (((1 << 64) - 1) ^ ((1 << bits) - 1)) if va >> (bits - 1) else va


class GuestMemory:
    """size bytes of guest physical memory starting at physical address phys_base; page
    tables allocated from phys_base + table_base upward. Addresses are physical."""

    def __init__(self, size: int, levels: int, table_base: int = 0x100000, phys_base: int = 0):
        self.mem = bytearray(size)
        self.levels = levels
        self.phys_base = phys_base
        self.next_table = phys_base + table_base
        self.root = self.alloc_table()

    def alloc_table(self) -> int:
        pa = self.next_table
        self.next_table += PAGE
        assert self.next_table <= self.phys_base + len(self.mem), "page-table area exhausted"
        return pa

    def entry(self, table: int, index: int) -> int:
        return struct.unpack_from("<Q", self.mem, table - self.phys_base + 8 * index)[0]

    def set_entry(self, table: int, index: int, value: int) -> None:
        struct.pack_into("<Q", self.mem, table - self.phys_base + 8 * index, value)

    def table_for(self, va: int, stop_shift: int) -> tuple[int, int]:
        """Walks (creating tables) down to the level indexed at stop_shift; (table, index)."""
        table = self.root
        for shift in LEVEL_SHIFTS[self.levels]:
            index = (va >> shift) & 511
            if shift == stop_shift:
                return table, index
            e = self.entry(table, index)
            if not e & P:
                e = self.alloc_table() | P | RW | ACCESSED
                self.set_entry(table, index, e)
            table = e & 0x000FFFFFFFFFF000
        raise AssertionError("no such level")

    def map(self, va: int, pa: int, size: int = PAGE, extra: int = 0) -> None:
        """Maps a 4 KiB, 2 MiB or 1 GiB page (pa aligned to size) at va."""
        assert pa % size == 0 and va % size == 0
        shift = {PAGE: 12, MB2: 21, GB1: 30}[size]
        table, index = self.table_for(va, shift)
        flags = P | RW | ACCESSED | DIRTY | NX | extra
        if size != PAGE:
            flags |= PS
        self.set_entry(table, index, pa | flags)

    def unmap_entry(self, va: int, shift: int, leave_address: bool = True) -> None:
        """Clears P in the entry at the level indexed at shift (keeps the rest, as Linux's
        swap/PROT_NONE entries do)."""
        table, index = self.table_for(va, shift)
        e = self.entry(table, index)
        self.set_entry(table, index, (e & ~P) if leave_address else 0)

    def fill(self, pa: int, data: bytes) -> None:
        start = pa - self.phys_base
        self.mem[start:start + len(data)] = data
