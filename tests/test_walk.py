"""READ_RANGES and WALK served by the host agent (protocol/llview_core.c) on synthetic guest
memory: real page tables and linked lists built byte by byte (raw-image mode, no kernel), so
every outcome is known in advance: a list walked to its head, a cycle, a link into unmapped
memory, ranges and derefs straddling pages, a walk too big for one reply continued from
`next`, and every bad description refused with its own error. The same requests against the
in-kernel agent in a real guest are in tests/test_kmod.py.
"""

from __future__ import annotations

import os
import struct
import uuid
from pathlib import Path

import pytest
from helpers import agent_proc
from helpers.llview_wire import MAX_PAYLOAD, MSG, PAGE, C, Client, ShmClient
from helpers.pagetables import MB2, GuestMemory
from helpers.walk_model import BAD_DESCRIPTIONS, PageReader, model_walk

from llview.agent_cli import AgentProcess

OK, UNMAPPED = C["LLV_OK"], C["LLV_UNMAPPED"]
STOP, LIMIT = C["LLV_WALK_STOP"], C["LLV_WALK_LIMIT"]
FULL, BAD_LINK = C["LLV_WALK_FULL"], C["LLV_WALK_BAD_LINK"]

MEM_SIZE = 16 << 20
HEAP = 0xFFFFFFFF90000000  # 4 MiB mapped (2 MiB pages) at physical 0x800000
HEAP_PA = 0x800000
UNMAPPED_VA = 0xFFFFFFFFA0000000
OBJ = 256                  # an object: u32 id at 0, u64 name pointer at 8, list_head at 64
LIST_AT = 64
NAMES = HEAP + 0x300000    # the names the objects point at
# Walking an object's list_head: the object's fields are at negative offsets from the node.
RANGES = [(-LIST_AT, 16)]                # id and name pointer
DEREFS = [(8 - LIST_AT, 0, 16)]          # the name, through the pointer (covered by the range)


class Heap:
    """Objects in a GuestMemory at HEAP, written before the image is saved."""

    def __init__(self, mem: GuestMemory):
        self.mem = mem

    def put(self, va: int, data: bytes) -> None:
        self.mem.fill(HEAP_PA + (va - HEAP), data)

    def obj(self, va: int, ident: int, next_node: int) -> None:
        name = NAMES + ident * 16
        self.put(va, struct.pack("<IIQ", ident, 0, name))
        self.put(va + LIST_AT, struct.pack("<QQ", next_node, 0))
        self.put(name, f"obj-{ident}".encode().ljust(16, b"\0"))

    def chain(self, heads_at: int, first_obj: int, count: int, stride: int = OBJ,
              last_next: int | None = None) -> list[int]:
        """A list: the pointer at heads_at, then count objects; the last one's next is
        last_next (default: heads_at, a circular list through its head). Returns the nodes."""
        nodes = [first_obj + i * stride + LIST_AT for i in range(count)]
        self.put(heads_at, struct.pack("<Q", nodes[0]))
        for i, node in enumerate(nodes):
            nxt = nodes[i + 1] if i + 1 < count else (heads_at if last_next is None else last_next)
            self.obj(node - LIST_AT, 1000 + (first_obj - HEAP) // 0x1000 + i, nxt)
        return nodes


# The lists (list heads are bare list_heads: the walk stops at them).
ROUND = HEAP + 0x1000          # 20 objects, circular through the head
CYCLE = HEAP + 0x2000          # 5 objects, the last pointing back at the first (no head)
BROKEN = HEAP + 0x3000         # 3 objects, the last pointing into unmapped memory
STRADDLE = HEAP + 0x4000       # 4 objects, each across a page boundary
LONG = HEAP + 0x5000           # 300 objects: too big for one reply with big ranges


@pytest.fixture(scope="module")
def lists(tmp_path_factory) -> dict:
    mem = GuestMemory(MEM_SIZE, 4)
    mem.map(HEAP, HEAP_PA, MB2)
    mem.map(HEAP + MB2, HEAP_PA + MB2, MB2)
    heap = Heap(mem)
    made = {
        "round": heap.chain(ROUND, HEAP + 0x10000, 20),
        "cycle": heap.chain(CYCLE, HEAP + 0x20000, 5, last_next=HEAP + 0x20000 + LIST_AT),
        "broken": heap.chain(BROKEN, HEAP + 0x30000, 3, last_next=UNMAPPED_VA),
        # Objects at page end - 68: each list_head, and its link, straddle a page boundary.
        "straddle": heap.chain(STRADDLE, HEAP + 0x40000 + PAGE - 68, 4, stride=2 * PAGE),
        "long": heap.chain(LONG, HEAP + 0x100000, 300),
    }
    path = tmp_path_factory.mktemp("walk") / "guest.img"
    path.write_bytes(mem.mem)
    made["image"], made["root"] = str(path), mem.root
    return made


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> tuple[str, bytes]:
    agent_proc.build()
    path = tmp_path_factory.mktemp("key") / "key.bin"
    return str(path), agent_proc.write_key(path)


@pytest.fixture(scope="module")
def agent(lists, key):
    """The host agent on the image, over TCP and a shared-memory region of its own."""
    shm = f"/dev/shm/llview-test-walk-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    a = AgentProcess(["--image", lists["image"], "--pgd", hex(lists["root"]), "--levels", "4",
                      "--key-file", key[0]], binary=agent_proc.AGENT, shm=shm)
    yield a
    a.stop()
    Path(shm).unlink(missing_ok=True)


@pytest.fixture(params=["tcp", "shm"])
def client(request, agent, key):
    c = Client(agent.port, key[1]) if request.param == "tcp" else ShmClient(agent.shm, key[1])
    yield c
    c.close()


def _ids(result) -> list[int]:
    """The ids of the objects whose id/name range came back, in walk order."""
    return [struct.unpack_from("<I", r.data)[0] for r in result.records
            if r.len == 16 and r.data and r.addr < NAMES and r.addr % OBJ == 0]


# ---- READ_RANGES -----------------------------------------------------------------------------

def test_ranges_are_the_bytes_read_returns(client, lists):
    page = HEAP + 0x10000
    whole = client.read([page])[0][1]
    ranges = [(page, 1), (page + 64, 16), (page + 4000, 96), (page, PAGE), (UNMAPPED_VA + 8, 8),
              (0x1000, 8)]
    records = client.read_ranges(ranges)
    assert records[0].data == whole[:1]
    assert records[1].data == whole[64:80]
    assert records[2].data == whole[4000:4096]
    assert records[3].data == whole
    assert (records[4].status, records[4].data) == (UNMAPPED, None)
    assert (records[5].status, records[5].data) == (C["LLV_USER_ADDRESS"], None)
    assert client.read_ranges([]) == []


def test_ranges_at_the_limits(client):
    n = C["LLV_MAX_RANGES"]
    per = C["LLV_MAX_RANGE_BYTES"] // n // 8 * 8
    records = client.read_ranges([(HEAP + i * PAGE, per) for i in range(n)])
    assert len(records) == n and all(r.status == OK and len(r.data) == per for r in records)
    assert records[5].data == client.read([HEAP + 5 * PAGE])[0][1][:per]


# ---- WALK ------------------------------------------------------------------------------------

def test_walk_follows_the_list_to_its_head(client, lists):
    result = client.walk(ROUND, ROUND, 0, 100, RANGES, DEREFS)
    assert (result.nodes, result.reason) == (20, STOP)
    ids = _ids(result)
    assert ids == [1000 + 0x10 + i for i in range(20)]
    names = [r.data.rstrip(b"\0").decode() for r in result.records if r.addr >= NAMES]
    assert names == [f"obj-{i}" for i in ids]
    # The node addresses, from the link records, are the list's.
    links = [struct.unpack("<Q", r.data)[0] for r in result.records if r.len == 8]
    assert links == lists["round"] + [ROUND]
    assert result == model_walk(PageReader(client), ROUND, ROUND, 0, 100, RANGES, DEREFS)


def test_walk_ends_at_max_nodes(client):
    result = client.walk(ROUND, ROUND, 0, 7, RANGES)
    assert (result.nodes, result.reason) == (7, LIMIT)
    rest = client.walk(result.next, ROUND, 0, 100, RANGES)
    assert (rest.nodes, rest.reason) == (13, STOP)
    assert _ids(result) + _ids(rest) == [1000 + 0x10 + i for i in range(20)]


def test_a_cycle_ends_at_max_nodes(client, lists):
    result = client.walk(CYCLE, CYCLE, 0, 23, RANGES)
    assert (result.nodes, result.reason) == (23, LIMIT)
    links = [struct.unpack("<Q", r.data)[0] for r in result.records if r.len == 8]
    assert links == (lists["cycle"] * 5)[:23]
    big = client.walk(CYCLE, 0, 0, C["LLV_MAX_WALK_NODES"])
    assert (big.nodes, big.reason) == (C["LLV_MAX_WALK_NODES"], LIMIT)


def test_an_unmapped_link_ends_bad_link(client, lists):
    result = client.walk(BROKEN, BROKEN, 0, 100, RANGES, DEREFS)
    # The third object's next, UNMAPPED_VA, is a fourth node (read from mapped memory); its
    # range cannot be read (a status, the walk goes on), nor the deref's pointer, which no
    # readable range covers (its own record, no target), nor its link.
    assert (result.nodes, result.reason, result.next) == (4, BAD_LINK, UNMAPPED_VA)
    assert [(r.addr, r.len, r.status) for r in result.records[-3:-1]] == [
        (UNMAPPED_VA - LIST_AT, 16, UNMAPPED), (UNMAPPED_VA + 8 - LIST_AT, 8, UNMAPPED)]
    last = result.records[-1]
    assert (last.addr, last.len, last.status, last.data) == (UNMAPPED_VA, 8, UNMAPPED, None)
    assert len(_ids(result)) == 3
    first = client.walk(UNMAPPED_VA + 0x100, 0, 0, 5)
    assert (first.nodes, first.reason, len(first.records)) == (0, BAD_LINK, 1)


def test_ranges_and_derefs_may_straddle_pages(client, lists):
    derefs = [(8 - LIST_AT, 0, 16), (LIST_AT - LIST_AT, 0, 8)]  # the name; *(node) = next
    result = client.walk(STRADDLE, STRADDLE, 0, 10, [(-LIST_AT, 16), (0, 16)], derefs)
    assert (result.nodes, result.reason) == (4, STOP)
    assert all(r.status == OK for r in result.records)
    assert result == model_walk(PageReader(client), STRADDLE, STRADDLE, 0, 10,
                                [(-LIST_AT, 16), (0, 16)], derefs)
    for node in lists["straddle"]:
        assert (node & (PAGE - 1)) + 8 > PAGE


def test_uncovered_pointer_is_a_record_of_its_own(client, lists):
    # No range covers the name pointer: the agent reads it as its own 8-byte record.
    result = client.walk(ROUND, ROUND, 0, 2, [], [(8 - LIST_AT, 0, 16)])
    node = lists["round"][0]
    assert [(r.addr, r.len) for r in result.records[:3]] == [
        (ROUND, 8), (node + 8 - LIST_AT, 8), (NAMES + (1000 + 0x10) * 16, 16)]


def test_an_over_long_walk_ends_full_and_continues(client, lists):
    ranges = [(-LIST_AT, 16), (-LIST_AT, PAGE)]
    results, first = [], LONG
    while True:
        result = client.walk(first, LONG, 0, C["LLV_MAX_WALK_NODES"], ranges)
        results.append(result)
        if result.reason != FULL:
            break
        assert result.nodes > 0
        size = MSG.size + 16 + sum(16 + len(r.data or b"") for r in result.records)
        assert size + 24 + (16 + 16) + (16 + PAGE) > MAX_PAYLOAD >= size  # the next did not fit
        assert result == model_walk(PageReader(client), first, LONG, 0,
                                    C["LLV_MAX_WALK_NODES"], ranges)
        first = result.next
    assert len(results) > 2 and results[-1].reason == STOP
    ids = [i for r in results for i in _ids(r)]
    assert ids == [1000 + 0x100 + i for i in range(300)]
    assert sum(r.nodes for r in results) == 300


@pytest.mark.parametrize("case", BAD_DESCRIPTIONS, ids=[c[0] for c in BAD_DESCRIPTIONS])
def test_bad_descriptions_get_their_error(client, agent, key, case):
    _, mtype, count, body, code, words = case
    client.send_raw(client.seal(MSG.pack(mtype, 0, count) + body))
    error = client.expect_error()
    assert error.code == code and words in error.message, error.message
    again = Client(agent.port, key[1])  # and the agent serves the next client
    try:
        assert again.read_ranges([(HEAP, 8)])[0].status == OK
    finally:
        again.close()
