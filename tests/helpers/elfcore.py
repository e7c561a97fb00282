"""Synthetic ELF64 cores, as QEMU's dump-guest-memory (paging=false) and kdump write them:
an ELF header (ET_CORE, EM_X86_64), a PT_NOTE (optionally holding a VMCOREINFO note) and one
PT_LOAD per RAM range, p_paddr the guest physical address, p_vaddr 0.

Segment data is laid out in the file in the order given (not necessarily physical order) and
after the notes at whatever offset that gives (QEMU does not page-align it either), so a reader
that assumes file offset == physical address, or sorted segments, gets the wrong bytes. Tests
corrupt the result through the offsets it records.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
NHDR = struct.Struct("<III")
SHDR = struct.Struct("<IIQQQQIIQQ")
ET_CORE, EM_X86_64, PT_LOAD, PT_NOTE, PN_XNUM = 4, 62, 1, 4, 0xFFFF
ELF_IDENT = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)  # ELFCLASS64, little-endian, version 1


@dataclass
class Segment:
    pa: int
    data: bytes
    memsz: int | None = None  # default len(data); more: the rest reads as zeros


@dataclass
class Core:
    image: bytearray
    phdr_offset: list[int] = field(default_factory=list)  # file offset of each program header
    data_offset: list[int] = field(default_factory=list)  # file offset of each PT_LOAD's bytes

    def set_phdr(self, index: int, **values: int) -> None:
        """Rewrites fields (p_type, p_offset, p_paddr, p_filesz, p_memsz) of a header."""
        names = ["p_type", "p_flags", "p_offset", "p_vaddr", "p_paddr", "p_filesz", "p_memsz",
                 "p_align"]
        fields = dict(zip(names, PHDR.unpack_from(self.image, self.phdr_offset[index]),
                          strict=True))
        fields.update(values)
        PHDR.pack_into(self.image, self.phdr_offset[index], *fields.values())


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    """One ELF note: header, NUL-terminated name and data, each padded to 4 bytes."""
    def pad(b: bytes) -> bytes:
        return b + bytes(-len(b) % 4)
    return NHDR.pack(len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)


def vmcoreinfo_note(text: str) -> bytes:
    return note(b"VMCOREINFO", 0, text.encode())


def build_core(segments: list[Segment], notes: bytes = b"", machine: int = EM_X86_64,
               etype: int = ET_CORE, xnum: bool = False) -> Core:
    """An ELF core of these segments; notes (already encoded, see note()) in one PT_NOTE.
    xnum: count the headers the PN_XNUM way (e_phnum 0xffff, the count in section 0)."""
    phnum = len(segments) + (1 if notes else 0)
    phoff = EHDR.size + (SHDR.size if xnum else 0)
    notes_at = phoff + phnum * PHDR.size
    pos = notes_at + len(notes)
    core = Core(bytearray())
    headers = []
    if notes:
        headers.append(PHDR.pack(PT_NOTE, 0, notes_at, 0, 0, len(notes), len(notes), 0))
    blobs = []
    for seg in segments:
        memsz = len(seg.data) if seg.memsz is None else seg.memsz
        headers.append(PHDR.pack(PT_LOAD, 0, pos, 0, seg.pa, len(seg.data), memsz, 0))
        core.data_offset.append(pos)
        blobs.append(seg.data)
        pos += len(seg.data) + 3  # odd gaps: nothing may assume aligned offsets
        blobs.append(b"\xa5" * 3)
    ehdr = EHDR.pack(ELF_IDENT, etype, machine, 1, 0, phoff, EHDR.size if xnum else 0, 0,
                     EHDR.size, PHDR.size, PN_XNUM if xnum else phnum, SHDR.size if xnum else 0,
                     1 if xnum else 0, 0)
    shdr = SHDR.pack(0, 0, 0, 0, 0, 0, 0, phnum, 0, 0) if xnum else b""
    core.image = bytearray(ehdr + shdr + b"".join(headers) + notes + b"".join(blobs))
    core.phdr_offset = [phoff + i * PHDR.size for i in range(phnum)]
    return core
