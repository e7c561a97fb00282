"""What a WALK reply must hold, computed the slow way: the pseudo-code of protocol/llview_proto.h
run in Python over READ (whole pages, one round trip each), so a test compares the agent's
one-round-trip walk with the IDS's own page-by-page reading of the same memory.
"""

from __future__ import annotations

import struct

from helpers.llview_wire import (
    MAX_PAYLOAD,
    MSG,
    PAGE,
    RANGE_DATA,
    WALK_END,
    C,
    Client,
    Record,
    WalkResult,
)

MASK = (1 << 64) - 1
OK = C["LLV_OK"]


class PageReader:
    """Guest memory through READ, a page at a time, cached for one model run."""

    def __init__(self, client: Client):
        self.client = client
        self.pages: dict[int, tuple[int, bytes | None]] = {}

    def page(self, addr: int) -> tuple[int, bytes | None]:
        base = addr & ~(PAGE - 1) & MASK
        if base not in self.pages:
            self.pages[base] = self.client.read([base])[0]
        return self.pages[base]

    def span(self, addr: int, length: int) -> tuple[int, bytes | None]:
        """length bytes at addr (which may straddle a page): the status of the first page that
        fails, or OK and the bytes."""
        data = b""
        while length:
            status, page = self.page(addr)
            if status != OK:
                return status, None
            off = addr & (PAGE - 1)
            take = min(length, PAGE - off)
            data += page[off:off + take]
            addr, length = (addr + take) & MASK, length - take
        return OK, data


def model_walk(mem: PageReader, first: int, stop: int, link: int, max_nodes: int,
               ranges=(), derefs=()) -> WalkResult:
    pos = MSG.size + WALK_END.size
    records: list[Record] = []

    def record(addr: int, length: int) -> Record | None:
        nonlocal pos
        if pos + RANGE_DATA.size + length > MAX_PAYLOAD:
            return None
        status, data = mem.span(addr & MASK, length)
        rec = Record(addr & MASK, length, status, data)
        records.append(rec)
        pos += RANGE_DATA.size + (length if status == OK else 0)
        return rec

    link_at = first
    for n in range(max_nodes):
        mark = (pos, len(records))
        rec = record(link_at, 8)
        if rec is None:
            return WalkResult(n, C["LLV_WALK_FULL"], link_at, records)
        if rec.status != OK:
            return WalkResult(n, C["LLV_WALK_BAD_LINK"], link_at, records)
        node, = struct.unpack("<Q", rec.data)
        if node in (0, stop):
            return WalkResult(n, C["LLV_WALK_STOP"], 0, records)
        full = False
        node_ranges = []
        for offset, length in ranges:
            rec = record(node + offset, length)
            if rec is None:
                full = True
                break
            node_ranges.append((offset, length, rec))
        for pointer, offset, length in ([] if full else derefs):
            value = None
            for r_off, r_len, rec in node_ranges:
                if rec.status == OK and r_off <= pointer and pointer + 8 <= r_off + r_len:
                    value = rec.data[pointer - r_off:pointer - r_off + 8]
                    break
            if value is None:
                rec = record(node + pointer, 8)
                if rec is None:
                    full = True
                    break
                value = rec.data
            if value is not None and struct.unpack("<Q", value)[0]:
                if record(struct.unpack("<Q", value)[0] + offset, length) is None:
                    full = True
                    break
        if full:
            pos, count = mark
            del records[count:]
            return WalkResult(n, C["LLV_WALK_FULL"], link_at, records)
        link_at = (node + link) & MASK
    return WalkResult(max_nodes, C["LLV_WALK_LIMIT"], link_at, records)


# ---- bad descriptions: (name, request type, count, body, error, words of the message) -----

def _ranges(*items: tuple[int, int, int]) -> bytes:
    return b"".join(struct.pack("<QII", a, n, r) for a, n, r in items)


def _walk(link: int = 0, max_nodes: int = 8, nranges: int = 0, nderefs: int = 0,
          reserved: int = 0) -> bytes:
    return struct.pack("<QQIIHHI", 0xFFFFFFFF81000000, 0, link, max_nodes, nranges, nderefs,
                       reserved)


def _deref(pointer: int = 0, offset: int = 0, length: int = 8, reserved: int = 0) -> bytes:
    return struct.pack("<iiII", pointer, offset, length, reserved)


_A = 0xFFFFFFFF81000000  # any page-aligned kernel address: the checks come before any read
_RR, _W = C["LLV_REQ_READ_RANGES"], C["LLV_REQ_WALK"]
_BIG, _LIMIT = C["LLV_E_TOO_LARGE"], C["LLV_MAX_WALK_OFFSET"]
_BAD = C["LLV_E_MALFORMED"]

BAD_DESCRIPTIONS = [
    ("ranges_count_over_limit", _RR, C["LLV_MAX_RANGES"] + 1,
     _ranges(*[(_A, 8, 0)] * (C["LLV_MAX_RANGES"] + 1)), _BIG, "at most 256"),
    ("ranges_body_short", _RR, 2, _ranges((_A, 8, 0)), _BAD, "must carry 40 bytes, not 24"),
    ("ranges_len_zero", _RR, 1, _ranges((_A, 0, 0)), _BAD, "range 0: len 0"),
    ("ranges_len_over_page", _RR, 1, _ranges((_A, PAGE + 1, 0)), _BAD, "len 4097"),
    ("ranges_cross_page", _RR, 2, _ranges((_A, 8, 0), (_A + 4000, 200, 0)), _BAD,
     "range 1: 200 bytes at 0xffffffff81000fa0 cross a page"),
    ("ranges_reserved", _RR, 1, _ranges((_A, 8, 7)), _BAD, "reserved is 7"),
    ("ranges_bytes_over_limit", _RR, 64, _ranges(*[(_A, PAGE, 0)] * 64), _BIG,
     "asks for 262144 bytes"),
    ("walk_count_nonzero", _W, 1, _walk(), _BAD, "count must be 0"),
    ("walk_body_short", _W, 0, _walk()[:16], _BAD, "shorter"),
    ("walk_reserved", _W, 0, _walk(reserved=1), _BAD, "reserved is 1"),
    ("walk_max_nodes_zero", _W, 0, _walk(max_nodes=0), _BAD, "max_nodes is 0"),
    ("walk_max_nodes_over_limit", _W, 0, _walk(max_nodes=C["LLV_MAX_WALK_NODES"] + 1), _BIG,
     "max_nodes 4097"),
    ("walk_ranges_over_limit", _W, 0, _walk(nranges=C["LLV_MAX_WALK_RANGES"] + 1), _BIG,
     "33 ranges"),
    ("walk_derefs_over_limit", _W, 0, _walk(nderefs=C["LLV_MAX_WALK_DEREFS"] + 1), _BIG,
     "17 derefs"),
    ("walk_body_missing_range", _W, 0, _walk(nranges=2) + struct.pack("<iI", 0, 8), _BAD,
     "must carry 56 bytes, not 48"),
    ("walk_body_trailing", _W, 0, _walk() + b"\0" * 4, _BAD, "must carry 40 bytes, not 44"),
    ("walk_link_offset", _W, 0, _walk(link=_LIMIT), _BAD, "link offset 1048576"),
    ("walk_range_offset", _W, 0, _walk(nranges=1) + struct.pack("<iI", _LIMIT, 8), _BAD,
     "range 0: offset 1048576"),
    ("walk_range_offset_negative", _W, 0, _walk(nranges=1) + struct.pack("<iI", -_LIMIT, 8),
     _BAD, "range 0: offset -1048576"),
    ("walk_range_len_zero", _W, 0, _walk(nranges=1) + struct.pack("<iI", 0, 0), _BAD,
     "range 0: len 0"),
    ("walk_range_len_over_page", _W, 0, _walk(nranges=1) + struct.pack("<iI", 0, PAGE + 1),
     _BAD, "len 4097"),
    ("walk_deref_pointer", _W, 0, _walk(nderefs=1) + _deref(pointer=_LIMIT), _BAD,
     "deref 0: pointer 1048576"),
    ("walk_deref_offset", _W, 0, _walk(nderefs=1) + _deref(offset=-_LIMIT), _BAD,
     "offset -1048576"),
    ("walk_deref_len_zero", _W, 0, _walk(nderefs=1) + _deref(length=0), _BAD, "deref 0: len 0"),
    ("walk_deref_reserved", _W, 0, _walk(nderefs=1) + _deref(reserved=3), _BAD,
     "deref 0: reserved is 3"),
]
