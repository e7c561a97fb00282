"""A synthetic guest kernel in synthetic RAM: kernel-image page tables, a VMCOREINFO note and
kallsyms tables in the layout of Linux 6.1 (token-compressed names with the "big symbol"
two-byte length, base-relative offsets with absolute per-cpu symbols). Lets the agent's
kernel discovery be tested without booting a guest, including what a real kernel rarely
exercises (long names, negative phys_base, a stale note left in RAM)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from helpers.pagetables import MB2, GuestMemory

START_KERNEL_MAP = 0xFFFFFFFF80000000
LINK_TEXT = 0xFFFFFFFF81000000
# Multi-character tokens, as scripts/kallsyms's compression produces; every other byte
# value stands for itself.
TOKENS = {0x01: "init_", 0x02: "swapper", 0x03: "_base", 0x04: "page_offset"}


@dataclass
class FakeKernel:
    release: str = "6.99.0-llview-test"
    slide: int = 0x2000000
    image_phys: int = 0x800000            # where the kernel image sits in RAM
    symbols: list[tuple[str, str, int]] = field(default_factory=list)  # (type, name, addr)
    note_stext: int | None = None         # override SYMBOL(_stext) in the note (a mismatch)
    page_offset_base_value: int = 0xFFFF888000000000

    @property
    def text(self) -> int:
        return LINK_TEXT + self.slide

    @property
    def phys_base(self) -> int:
        return self.image_phys - (self.text - START_KERNEL_MAP)

    def va_to_pa(self, va: int) -> int:
        return va - START_KERNEL_MAP + self.phys_base

    def default_symbols(self) -> list[tuple[str, str, int]]:
        t = self.text
        long_name = "llview_" + "x" * 150  # > 127 tokens: the two-byte length
        return [
            ("A", "fixed_percpu_data", 0x0),          # absolute per-cpu: offset >= 0
            ("D", "cpu_number", 0x1C000),
            ("T", "_text", t),
            ("T", "_stext", t + 0x1000),
            ("D", "init_task", t + 0x300000),
            ("D", "linux_banner", t + 0x300800),
            ("D", "page_offset_base", t + 0x301000),
            ("t", long_name, t + 0x2000),
            ("t", "swapper_dup", t + 0x3000),         # a static twice: the global wins
            ("T", "swapper_dup", t + 0x4000),
        ]

    def encode_name(self, type_char: str, name: str) -> bytes:
        text = type_char + name
        reverse = {v: k for k, v in TOKENS.items()}
        out, i = [], 0
        while i < len(text):
            for tok, idx in sorted(reverse.items(), key=lambda kv: -len(kv[0])):
                if text.startswith(tok, i):
                    out.append(idx)
                    i += len(tok)
                    break
            else:
                out.append(ord(text[i]))
                i += 1
        n = len(out)
        head = bytes([n]) if n < 0x80 else bytes([(n & 0x7F) | 0x80, n >> 7])
        return head + bytes(out)

    def build(self, mem: GuestMemory) -> None:
        """Writes page tables, the kallsyms tables, data and the note into mem (4-level)."""
        if not self.symbols:
            self.symbols = self.default_symbols()
        t = self.text
        for off in range(0, 4 * MB2, MB2):               # the kernel image: 2 MiB pages
            mem.map(t + off, self.image_phys + off, MB2)
        relative_base = t
        # kallsyms tables at _text + 0x200000, in the order scripts/kallsyms emits them.
        offsets = b"".join(struct.pack("<i", a if typ == "A" or a < 0x100000000 else
                                       relative_base - 1 - a) for typ, _, a in self.symbols)
        names = b"".join(self.encode_name(typ, n) for typ, n, _ in self.symbols)
        tokens = [TOKENS.get(i, chr(i) if i else "") for i in range(256)]
        token_table, token_index = b"", []
        for tok in tokens:
            token_index.append(len(token_table))
            token_table += tok.encode("latin-1") + b"\0"
        layout = {}
        va = t + 0x200000
        for name, blob in [("kallsyms_offsets", offsets),
                           ("kallsyms_relative_base", struct.pack("<Q", relative_base)),
                           ("kallsyms_num_syms", struct.pack("<I", len(self.symbols))),
                           ("kallsyms_names", names),
                           ("kallsyms_token_table", token_table),
                           ("kallsyms_token_index", struct.pack("<256H", *token_index))]:
            layout[name] = va
            mem.fill(self.va_to_pa(va), blob)
            va = (va + len(blob) + 7) & ~7
        sym = {n: a for _, n, a in self.symbols}
        mem.fill(self.va_to_pa(sym["page_offset_base"]),
                 struct.pack("<Q", self.page_offset_base_value))
        mem.fill(self.va_to_pa(sym["init_task"]), b"init-task-bytes")
        # init_top_pgt is the root table; it must lie inside the mapped image.
        init_top_pgt = mem.root - self.phys_base + START_KERNEL_MAP
        assert self.va_to_pa(init_top_pgt) == mem.root
        note = [f"OSRELEASE={self.release}", "PAGESIZE=4096",
                f"SYMBOL(_stext)={self.note_stext or sym['_stext']:x}"]
        note += [f"SYMBOL({n})={a:x}" for n, a in layout.items()]
        note += [f"NUMBER(phys_base)={self.phys_base}", f"SYMBOL(init_top_pgt)={init_top_pgt:x}",
                 "NUMBER(pgtable_l5_enabled)=0", f"KERNELOFFSET={self.slide:x}",
                 "NUMBER(sme_mask)=0"]
        # The format strings of the kernel image, then a stale note from an "earlier boot"
        # whose page-table root does not map itself, then the real note.
        mem.fill(0x300000, b"OSRELEASE=%s\n\0PAGESIZE=%ld\n\0SYMBOL(%s)=%lx\n\0")
        stale = [line.replace(f"{init_top_pgt:x}", f"{init_top_pgt + 0x7000:x}")
                 if line.startswith("SYMBOL(init_top_pgt)") else line for line in note]
        mem.fill(0x301000, ("\n".join(stale) + "\n\0").encode())
        mem.fill(0x302000, ("\n".join(note) + "\n\0").encode())
        self.layout = layout
