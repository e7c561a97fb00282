"""footprints: find the lists an IDS follows and what it reads from every node.

After guest_loads, a loop that walks a kernel list looks like

    %first = load ptr, ptr (call @__llview_load(ptr %head.next, i64 8, ...))
  loop:
    %node = phi ptr [ %first, %before ], [ %next, %latch ]
    ... @__llview_load(ptr (%node + C), i64 S, ...)          ; a field of the node
    ... @__llview_load(ptr (load (%node + P)) + D, i64 S)    ; a field one pointer away
    %next = load ptr, ptr (call @__llview_load(ptr (%node + LINK), i64 8, ...))

(list_for_each_entry, for_each_process, for_each_thread after clang's
optimiser: the loop variable is the list node, fields are constant offsets
from it; or the entry, L + shift, for a container_of or hlist_entry_safe
the optimiser kept, when offsets are given from L). Skipped, each with its
reason in --stats: phis of more than two values, links or fields beyond
the protocol's offsets, and a walk inside another walk's loop (one round
trip per outer node would cost more than the page path). For each walk the
pass emits the walk's description, the
node's footprint (every constant-offset read of the node in the loop, and
of a pointer read from it: one level, as p->real_parent->tgid), and
inserts, before the read of the first node pointer,

    call void @__llview_walk(ptr %head.next, ptr @llview.walk.N, i32 site)

so the runtime asks the agent to follow the whole list in one request
(llview_rt.h describes the array). The loop itself is unchanged: every read
still goes through the cache, and one the walk did not bring is fetched as
before. A pointer into the node handed to a runtime call (a string field:
llview_field_str(p->comm)) counts as its first STRING_FOOTPRINT bytes.

Outside walks, a pointer read through at two or more constant offsets in
one block gets its object footprint, as a hint before the first of them:

    call void @__llview_footprint(ptr %p, ptr @llview.footprint.N)

so that, under --fetch objects, the read that misses fetches those fields
in one request rather than a block of pages. Reads through a walk's node
are left to the walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import llvmlite.binding as llvm

from llview.irtext import Block, Function, Inst, ModuleView, address
from llview.passes.context import PassContext, PassStats

NAME = "footprints"

LOAD = "__llview_load"
WALK = "__llview_walk"
# Bytes assumed for a string or object read through a runtime call (TASK_COMM_LEN and a
# module name fit; the runtime reads the rest on demand).
STRING_FOOTPRINT = 64
# Limits of the wire protocol (llview_proto.h: LLV_MAX_WALK_RANGES/DEREFS, LLV_PAGE_SIZE,
# LLV_MAX_WALK_OFFSET); a footprint beyond them is merged or cut, never refused.
MAX_RANGES = 32
MAX_DEREFS = 16
MAX_LEN = 4096
MAX_OFFSET = 1 << 20
# Reads closer than this are fetched as one range (a record costs 16 bytes of header).
MERGE_GAP = 16


@dataclass
class Footprint:
    ranges: set[tuple[int, int]] = field(default_factory=set)           # (offset, len)
    derefs: set[tuple[int, int, int]] = field(default_factory=set)      # (pointer, offset, len)


@dataclass
class Walk:
    node: Inst            # the loop's phi
    first_load: Inst      # the __llview_load call reading the first node pointer
    link: int
    footprint: Footprint
    body: set[Block]      # the loop's blocks


FOOTPRINT = "__llview_footprint"


def run(view: ModuleView, ctx: PassContext) -> PassStats:
    stats = PassStats(NAME)
    for func in view.functions:
        walks = _walks(func, stats)
        for walk in walks:
            _emit(view, ctx, walk, stats)
        if any(i.opcode == "call" and i.direct_callee() == LOAD for i in func.insts):
            _objects(view, ctx, func, {address(w.node.ref) for w in walks}, stats)
    return stats


def _objects(view: ModuleView, ctx: PassContext, func: Function, nodes: set[int],
             stats: PassStats) -> None:
    """Footprint hints for the pointers read through at several constant offsets in a block."""
    func.bind()
    for block in func.blocks:
        reads: dict[int, list[tuple[Inst, int, int]]] = {}
        for inst in block.insts:
            if inst.opcode != "call" or inst.direct_callee() != LOAD:
                continue
            ops = list(inst.ref.operands)
            if ops[1].value_kind != llvm.ValueKind.constant_int:
                continue
            base, offset = _split(func, ops[0])
            if base in nodes or abs(offset) >= MAX_OFFSET:
                continue    # a walk's node: the walk brings it
            reads.setdefault(base, []).append((inst, offset, ops[1].get_constant_value()))
        for found in reads.values():
            fields = {(offset, size) for _, offset, size in found}
            ranges = merge_ranges(fields, MAX_RANGES)
            if len(fields) < 2 or not _base_value(func, found[0][0]):
                continue    # one field: the miss fetches no more than it
            words = [len(ranges)] + [x for r in ranges for x in r]
            index = int(stats.counts.get("object footprints", 0))
            while f"llview.footprint.{index}" in view.global_lines:
                index += 1
            name = f"@llview.footprint.{index}"
            view.add_global(_int_array(name, words))
            call = found[0][0]
            view.insert_call(call, "void", ctx.declare(view, FOOTPRINT),
                             [f"ptr {_base_value(func, call)}", f"ptr {name}"])
            stats.count("object footprints")


def _base_value(func: Function, call: Inst) -> str | None:
    """How the base of a __llview_load's pointer is spelled in the text (None: a constant
    expression or other value with no name to pass)."""
    ref = next(iter(call.ref.operands))
    for _ in range(16):
        inst = _inst(func, ref)
        if inst is None or inst.opcode != "getelementptr" or " i8, ptr " not in inst.text:
            break
        ref = next(iter(inst.ref.operands))
    if ref.value_kind in (llvm.ValueKind.instruction, llvm.ValueKind.argument):
        return func.view.value_text(func, ref)
    return None


# -- finding walks -------------------------------------------------------------------------------

def _walks(func: Function, stats: PassStats) -> list[Walk]:
    if not any(i.opcode == "call" and i.direct_callee() == LOAD for i in func.insts):
        return []
    func.bind()
    found = []
    for block in func.blocks:
        for inst in block.insts:
            if inst.opcode != "phi":
                break
            if str(inst.ref.type) != "ptr":
                continue
            walk = _walk_of(func, block, inst, stats)
            if walk:
                found.append(walk)
    # A list walked once per node of another walk (for_each_thread inside for_each_process)
    # would cost a round trip per outer node, where page blocks fetched for the outer nodes'
    # neighbours serve most of its reads: only the outermost walks are made.
    outer = [w for w in found if not any(o is not w and w.node.block in o.body and
                                         o.node.block is not w.node.block for o in found)]
    if len(outer) < len(found):
        stats.skip("list walk inside another walk", len(found) - len(outer))
    return outer


def _inst(func: Function, ref: llvm.ValueRef) -> Inst | None:
    if ref.value_kind != llvm.ValueKind.instruction:
        return None
    return func.by_address.get(address(ref))


def _guest_read(func: Function, ref: llvm.ValueRef) -> tuple[Inst, llvm.ValueRef] | None:
    """For `load ptr, ptr (call @__llview_load(ptr A, i64 8, ...))`: the call and A."""
    load = _inst(func, ref)
    if load is None or load.opcode != "load" or str(load.ref.type) != "ptr":
        return None
    call = _inst(func, next(iter(load.ref.operands)))
    if call is None or call.opcode != "call" or call.direct_callee() != LOAD:
        return None
    return call, next(iter(call.ref.operands))


def _split(func: Function, ref: llvm.ValueRef) -> tuple[int, int]:
    """(address of the base value, constant offset) for base + constant, through i8 geps."""
    offset = 0
    for _ in range(16):
        inst = _inst(func, ref)
        if inst is None or inst.opcode != "getelementptr":
            break
        ops = list(inst.ref.operands)
        # only `getelementptr [inbounds] i8, ptr %x, i64 C`: struct and array geps are left to
        # the optimiser, which turns constant ones into this form (others: no footprint)
        if len(ops) != 2 or " i8, ptr " not in inst.text or \
                ops[1].value_kind != llvm.ValueKind.constant_int:
            break
        offset += ops[1].get_constant_value(signed_int=True)
        ref = ops[0]
    return address(ref), offset


def _node_read(func: Function, ref: llvm.ValueRef) -> tuple[Inst, llvm.ValueRef, int] | None:
    """A loop value that is a node pointer read from the guest, perhaps turned into its entry:
    L, L + shift (container_of) or `L == NULL ? NULL : L + shift` (hlist_entry_safe). Returns
    the __llview_load reading L, its pointer operand, and shift (the loop value = L + shift)."""
    inst = _inst(func, ref)
    if inst is not None and inst.opcode == "select":
        cond, yes, no = list(inst.ref.operands)[:3]
        test = _inst(func, cond)
        if test is None or test.opcode != "icmp" or " eq ptr " not in test.text or \
                yes.value_kind != llvm.ValueKind.constant_pointer_null:
            return None     # only the NULL test of hlist_entry_safe
        ref = no
    shift = 0
    inst = _inst(func, ref)
    if inst is not None and inst.opcode == "getelementptr":
        base, shift = _split(func, ref)
        ref = next(iter(inst.ref.operands))
        while _inst(func, ref) is not None and _inst(func, ref).opcode == "getelementptr":
            ref = next(iter(_inst(func, ref).ref.operands))
        if address(ref) != base:
            return None
    read = _guest_read(func, ref)
    return (read[0], read[1], shift) if read else None


def _walk_of(func: Function, header: Block, phi: Inst, stats: PassStats) -> Walk | None:
    incoming = list(zip(phi.ref.operands, phi.ref.incoming_blocks, strict=True))
    if len(incoming) != 2:
        stats.skip("phi with more than two incoming values")   # not a simple list loop
        return None
    node = address(phi.ref)
    for (next_ref, latch_ref), (first_ref, _) in (incoming, incoming[::-1]):
        step = _node_read(func, next_ref)
        first = _node_read(func, first_ref)
        if step is None or first is None or step[2] != first[2]:
            continue
        base, link = _split(func, step[1])
        if base != node:
            continue
        latch = func.block_by_address[address(latch_ref)]
        body = _loop_blocks(func, header, latch)
        if first[0].block in body:
            continue     # both values come from inside the loop: not a walk's entry
        # The agent follows the raw node pointers (L); the loop's value is L + shift, so
        # every offset from it is one of shift more from L.
        shift = step[2]
        fp = _footprint(func, body, node, stats)
        fp.ranges = {(o + shift, n) for o, n in fp.ranges}
        fp.derefs = {(p + shift, o, n) for p, o, n in fp.derefs}
        if abs(link + shift) >= MAX_OFFSET:
            stats.skip("list link too far from the node")
            return None
        return Walk(phi, first[0], link + shift, fp, body)
    return None


def _successors(func: Function, block: Block) -> list[Block]:
    return [func.block_by_address[address(op)] for op in block.terminator.ref.operands
            if op.value_kind == llvm.ValueKind.basic_block]


def _loop_blocks(func: Function, header: Block, latch: Block) -> set[Block]:
    """The natural loop of the back edge latch -> header: blocks reaching latch, not via
    header."""
    preds: dict[int, list[Block]] = {}
    for block in func.blocks:
        for succ in _successors(func, block):
            preds.setdefault(id(succ), []).append(block)
    body = {header, latch}
    work = [latch] if latch is not header else []
    while work:
        for pred in preds.get(id(work.pop()), []):
            if pred not in body:
                body.add(pred)
                work.append(pred)
    return body


def _footprint(func: Function, body: set[Block], node: int, stats: PassStats) -> Footprint:
    fp = Footprint()
    # pointers read from the node: the loaded value's address -> the node offset it came from
    pointer_at: dict[int, int] = {}
    calls = [i for i in func.insts if i.block in body and i.opcode == "call"]
    for call in calls:
        if call.direct_callee() != LOAD:
            continue
        ops = list(call.ref.operands)
        base, offset = _split(func, ops[0])
        size = ops[1].get_constant_value() if ops[1].value_kind == llvm.ValueKind.constant_int \
            else 0
        if base == node and size:
            fp.ranges.add((offset, size))
            for use in _loads_of(func, call):
                if str(use.ref.type) == "ptr" and size == 8:
                    pointer_at[address(use.ref)] = offset
    for call in calls:
        name = call.direct_callee()
        ops = list(call.ref.operands)
        if name == LOAD:
            base, offset = _split(func, ops[0])
            size = ops[1].get_constant_value() if \
                ops[1].value_kind == llvm.ValueKind.constant_int else 0
            if base in pointer_at and size:
                fp.derefs.add((pointer_at[base], offset, size))
            continue
        if name is None or name.startswith("llvm."):
            continue
        for op in ops[:-1]:    # the last operand of a call is its callee
            if str(op.type) != "ptr":
                continue
            base, offset = _split(func, op)
            if base == node:
                fp.ranges.add((offset, STRING_FOOTPRINT))
            elif base in pointer_at:
                fp.derefs.add((pointer_at[base], offset, STRING_FOOTPRINT))
    if any(abs(o) >= MAX_OFFSET for o, _ in fp.ranges) or \
            any(abs(p) >= MAX_OFFSET or abs(o) >= MAX_OFFSET for p, o, _ in fp.derefs):
        stats.skip("footprint offsets beyond the protocol's limit")
        fp.ranges = {r for r in fp.ranges if abs(r[0]) < MAX_OFFSET}
        fp.derefs = {d for d in fp.derefs if abs(d[0]) < MAX_OFFSET and abs(d[1]) < MAX_OFFSET}
    return fp


def _loads_of(func: Function, call: Inst) -> list[Inst]:
    me = func.value_names.get(address(call.ref))
    return [i for i in func.insts if i.opcode == "load" and
            func.value_names.get(address(next(iter(i.ref.operands)))) == me]


# -- emitting ------------------------------------------------------------------------------------

def merge_ranges(ranges: set[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """Sorted, 8-byte aligned (the cache keeps bytes in 8-byte units) and merged where closer
    than MERGE_GAP; then the closest neighbours are merged until at most `limit` remain."""
    spans = sorted((o & ~7, (o + n + 7) & ~7) for o, n in ranges)
    merged: list[list[int]] = []
    for lo, hi in spans:
        if merged and lo - merged[-1][1] < MERGE_GAP:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    while len(merged) > limit:
        gaps = [merged[i + 1][0] - merged[i][1] for i in range(len(merged) - 1)]
        i = gaps.index(min(gaps))
        merged[i][1] = merged.pop(i + 1)[1]
    out = []
    for lo, hi in merged:      # a span longer than a record may carry becomes several
        while hi - lo > MAX_LEN:
            out.append((lo, MAX_LEN))
            lo += MAX_LEN
        out.append((lo, hi - lo))
    return out[:limit]


def merge_derefs(derefs: set[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    by_pointer: dict[int, set[tuple[int, int]]] = {}
    for pointer, offset, size in derefs:
        by_pointer.setdefault(pointer, set()).add((offset, size))
    out = [(pointer, offset, size) for pointer in sorted(by_pointer)
           for offset, size in merge_ranges(by_pointer[pointer], MAX_DEREFS)]
    return out[:MAX_DEREFS]


def _int_array(name: str, words: list[int]) -> str:
    return (f"{name} = private unnamed_addr constant [{len(words)} x i32] ["
            + ", ".join(f"i32 {w}" for w in words) + "], align 4")


def describe(walk_ranges: list[tuple[int, int]], walk_derefs: list[tuple[int, int, int]],
             link: int) -> str:
    """The walk as --stats prints it: link, ranges and derefs as offsets from the node."""
    ranges = " ".join(f"[{o:+d},{o + n:+d})" for o, n in walk_ranges)
    derefs = " ".join(f"*({p:+d}){o:+d}:{n}" for p, o, n in walk_derefs)
    return f"link {link:+d}; node {ranges or '-'}; via pointers {derefs or '-'}"


def _emit(view: ModuleView, ctx: PassContext, walk: Walk, stats: PassStats) -> None:
    ranges = merge_ranges(walk.footprint.ranges, MAX_RANGES)
    derefs = merge_derefs(walk.footprint.derefs)
    words = [walk.link, len(ranges), len(derefs)]
    words += [x for r in ranges for x in r]
    words += [x for d in derefs for x in d]
    index = int(stats.counts.get("list walks", 0))
    while f"llview.walk.{index}" in view.global_lines:
        index += 1     # a module llview processed before (diagnosed at the end) has them
    name = f"@llview.walk.{index}"
    view.add_global(_int_array(name, words))
    call = walk.first_load
    first = view.value_text(call.func, next(iter(call.ref.operands)))
    view.insert_call(call, "void", ctx.declare(view, WALK),
                     [f"ptr {first}", f"ptr {name}", f"i32 {ctx.site(view, call)}"])
    loc = view.location(call)
    stats.count("list walks")
    stats.count(f"walk at {loc.file}:{loc.line}: {describe(ranges, derefs, walk.link)}")
