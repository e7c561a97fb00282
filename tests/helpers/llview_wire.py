"""A Python peer for the llview wire protocol, built on `cryptography`'s AES-GCM and hmac.

It is an independent implementation of docs/protocol.md used to drive the C agent in tests,
so it can also forge what a real client never sends: tampered, replayed, reordered,
truncated and oversized frames. Constants are read from protocol/llview_proto.h, the
one definition of the protocol.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import os
import re
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PROTO_H = Path(__file__).resolve().parents[2] / "protocol" / "llview_proto.h"


def _evaluate(expr: str, known: dict[str, int]) -> int | None:
    """The value of a #define made of numbers, earlier LLV_ constants, parentheses and
    + - * << (e.g. `(1 << 20)`); None for anything else (sizeof, casts, strings)."""
    tokens = re.findall(r"0x[0-9a-fA-F]+u?|\d+u?|LLV_\w+|<<|[-+*()]|\S", expr)
    out = []
    for tok in tokens:
        if re.fullmatch(r"0x[0-9a-fA-F]+u?|\d+u?", tok):
            out.append(str(int(tok.rstrip("u"), 0)))
        elif tok.startswith("LLV_"):
            if tok not in known:
                return None
            out.append(str(known[tok]))
        elif tok in ("<<", "+", "-", "*", "(", ")"):
            out.append(tok)
        else:
            return None
    try:  # only digits and the operators above reach eval
        return int(eval(" ".join(out), {"__builtins__": {}}))  # noqa: S307
    except (SyntaxError, TypeError, ValueError):
        return None


def _constants() -> dict[str, int]:
    text = PROTO_H.read_text()
    found: dict[str, int] = {}
    for name, expr in re.findall(r"^#define\s+(LLV_\w+)[ \t]+([^\n]*?)\s*(?:/\*.*)?$", text,
                                 re.MULTILINE):
        value = _evaluate(expr, found)
        if value is not None:
            found[name] = value
    found.update({name: int(value) for name, value in re.findall(r"\b(LLV_\w+)\s*=\s*(\d+)",
                                                                   text)})
    return found


C = _constants()
MAGIC, VERSION = C["LLV_MAGIC"], C["LLV_VERSION"]
ROLE_CLIENT, ROLE_SERVER = C["LLV_ROLE_CLIENT"], C["LLV_ROLE_SERVER"]
PAGE = C["LLV_PAGE_SIZE"]
MAX_PAGES = C["LLV_MAX_PAGES"]
TAG_LEN = C["LLV_TAG_LEN"]
SESSION_LABEL = re.search(r'LLV_SESSION_LABEL\s+"([^"]+)"', PROTO_H.read_text()).group(1).encode()

HELLO = struct.Struct("<IHH32s")
FRAME_HDR = struct.Struct("<IIQ")
MSG = struct.Struct("<HHI")
INFO = struct.Struct("<QQII64s")
SYMBOL = struct.Struct("<QQ")  # struct llv_symbol
RANGE = struct.Struct("<QII")  # struct llv_range: addr, len, reserved
RANGE_DATA = struct.Struct("<QII")  # struct llv_range_data: addr, len, status
# struct llv_walk: first, stop, link, max_nodes, nranges, nderefs, reserved
WALK = struct.Struct("<QQIIHHI")
WALK_RANGE = struct.Struct("<iI")  # struct llv_walk_range: offset, len
WALK_DEREF = struct.Struct("<iiII")  # struct llv_walk_deref: pointer, offset, len, 0
WALK_END = struct.Struct("<IIQ")  # struct llv_walk_end: nodes, reason, next
MAX_PAYLOAD = MSG.size + MAX_PAGES * (4 + PAGE)  # LLV_MAX_PAYLOAD


class PeerClosed(Exception):
    """The agent closed the connection."""


class AgentError(Exception):
    """The agent answered REP_ERROR."""

    def __init__(self, code: int, message: str):
        super().__init__(f"agent error {code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Record:
    """One struct llv_range_data of a READ_RANGES or WALK reply; data is None unless LLV_OK."""
    addr: int
    len: int
    status: int
    data: bytes | None


@dataclass
class WalkResult:
    nodes: int
    reason: int
    next: int
    records: list[Record]


def parse_records(body: bytes, pos: int, count: int) -> list[Record]:
    """count records from body[pos:], each bounds-checked against the frame; the body must
    end exactly after the last."""
    records = []
    for i in range(count):
        assert pos + RANGE_DATA.size <= len(body), f"record {i} header past the frame"
        addr, length, status = RANGE_DATA.unpack_from(body, pos)
        pos += RANGE_DATA.size
        assert 1 <= length <= PAGE, f"record {i} has len {length}"
        data = None
        if status == C["LLV_OK"]:
            assert pos + length <= len(body), f"record {i} bytes past the frame"
            data = body[pos:pos + length]
            pos += length
        records.append(Record(addr, length, status, data))
    assert pos == len(body), f"{len(body) - pos} bytes after the last record"
    return records


def walk_body(first: int, stop: int, link: int, max_nodes: int,
              ranges: list[tuple[int, int]] = (), derefs: list[tuple[int, int, int]] = (),
              reserved: int = 0) -> bytes:
    """The body of a WALK request (ranges: (offset, len); derefs: (pointer, offset, len))."""
    return (WALK.pack(first, stop, link, max_nodes, len(ranges), len(derefs), reserved)
            + b"".join(WALK_RANGE.pack(o, n) for o, n in ranges)
            + b"".join(WALK_DEREF.pack(p, o, n, 0) for p, o, n in derefs))


@dataclass
class Reply:
    type: int
    flags: int
    count: int
    body: bytes


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise PeerClosed(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def _nonce(direction: int, seq: int) -> bytes:
    return struct.pack("<IQ", direction, seq)


class Client:
    """One connection to an agent; connect() does the handshake."""

    def __init__(self, port: int, psk: bytes, host: str = "127.0.0.1", timeout: float = 10.0,
                 handshake: bool = True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.psk = psk
        self.send_seq = 0
        self.recv_seq = 0
        if handshake:
            self.handshake()

    def handshake(self) -> None:
        mine = os.urandom(32)
        self.sock.sendall(HELLO.pack(MAGIC, VERSION, ROLE_CLIENT, mine))
        magic, version, role, theirs = HELLO.unpack(recv_exact(self.sock, HELLO.size))
        assert (magic, version, role) == (MAGIC, VERSION, ROLE_SERVER)
        key = hmac.new(self.psk, SESSION_LABEL + mine + theirs, hashlib.sha256).digest()
        self.aead = AESGCM(key)

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, frame: bytes) -> None:
        """Sends bytes as they are (a frame, or something forged)."""
        self.sock.sendall(frame)

    # ---- frames ----------------------------------------------------------------------

    def seal(self, plaintext: bytes, seq: int | None = None) -> bytes:
        """A frame as a client sends it; seq defaults to the next one (and advances it)."""
        if seq is None:
            seq = self.send_seq
            self.send_seq += 1
        header = FRAME_HDR.pack(MAGIC, len(plaintext), seq)
        return header + self.aead.encrypt(_nonce(ROLE_CLIENT, seq), plaintext, header)

    def recv_frame(self) -> bytes:
        """Receives and opens the agent's next frame (InvalidTag if it does not open)."""
        header = recv_exact(self.sock, FRAME_HDR.size)
        magic, length, seq = FRAME_HDR.unpack(header)
        assert magic == MAGIC, f"bad magic {magic:#x}"
        assert seq == self.recv_seq, f"agent sent seq {seq}, expected {self.recv_seq}"
        assert length <= MAX_PAYLOAD
        body = recv_exact(self.sock, length + TAG_LEN)
        plaintext = self.aead.decrypt(_nonce(ROLE_SERVER, seq), body, header)
        self.recv_seq += 1
        return plaintext

    def recv_reply(self) -> Reply:
        pt = self.recv_frame()
        mtype, flags, count = MSG.unpack_from(pt)
        if mtype == C["LLV_REP_ERROR"]:
            raise AgentError(count, pt[MSG.size:].split(b"\0")[0].decode())
        return Reply(mtype, flags, count, pt[MSG.size:])

    def request(self, mtype: int, count: int, body: bytes = b"") -> Reply:
        self.send_raw(self.seal(MSG.pack(mtype, 0, count) + body))
        return self.recv_reply()

    def expect_error(self) -> AgentError:
        """Reads the REP_ERROR the agent sends for a bad frame, then checks it closed."""
        try:
            reply = self.recv_reply()
        except AgentError as e:
            self.expect_closed()
            return e
        raise AssertionError(f"expected REP_ERROR, got {reply}")

    def expect_closed(self) -> None:
        assert self.sock.recv(1) == b"", "agent did not close the connection"

    # ---- requests --------------------------------------------------------------------

    def read(self, addresses: list[int]) -> list[tuple[int, bytes | None]]:
        """READ: (status, page or None) for each address, in order."""
        body = b"".join(struct.pack("<Q", a) for a in addresses)
        rep = self.request(C["LLV_REQ_READ"], len(addresses), body)
        assert rep.type == C["LLV_REP_READ"] and rep.count == len(addresses)
        statuses = struct.unpack_from(f"<{rep.count}I", rep.body)
        pages, pos = [], 4 * rep.count
        for status in statuses:
            if status == C["LLV_OK"]:
                pages.append((status, rep.body[pos:pos + PAGE]))
                pos += PAGE
            else:
                pages.append((status, None))
        assert pos == len(rep.body), "reply carries more or fewer pages than statuses say"
        return pages

    def read_bytes(self, address: int, length: int) -> bytes:
        """Reads guest virtual memory spanning pages; raises on any non-OK page."""
        first = address & ~(PAGE - 1)
        pages = self.read(list(range(first, address + length, PAGE)))
        assert all(status == C["LLV_OK"] for status, _ in pages), pages
        data = b"".join(page for _, page in pages)
        return data[address - first:address - first + length]

    def syms(self, names: list[str]) -> list[int]:
        body = b"".join(n.encode() + b"\0" for n in names)
        rep = self.request(C["LLV_REQ_SYMS"], len(names), body)
        assert rep.type == C["LLV_REP_SYMS"] and rep.count == len(names)
        assert len(rep.body) == 8 * len(names)
        return list(struct.unpack(f"<{len(names)}Q", rep.body))

    def symbolize(self, addresses: list[int]) -> list[tuple[int, int, str]]:
        """SYMBOLIZE: (start, size, name) per address; (0, 0, "") outside the core kernel."""
        body = b"".join(struct.pack("<Q", a) for a in addresses)
        rep = self.request(C["LLV_REQ_SYMBOLIZE"], len(addresses), body)
        assert rep.type == C["LLV_REP_SYMBOLIZE"] and rep.count == len(addresses)
        fixed = SYMBOL.size * rep.count
        names = rep.body[fixed:].split(b"\0")
        assert len(names) == rep.count + 1 and names[-1] == b"", "names not NUL-terminated"
        return [(*SYMBOL.unpack_from(rep.body, SYMBOL.size * i), names[i].decode())
                for i in range(rep.count)]

    def read_ranges(self, ranges: list[tuple[int, int]]) -> list[Record]:
        """READ_RANGES: one Record per (addr, len), in request order."""
        body = b"".join(RANGE.pack(a, n, 0) for a, n in ranges)
        rep = self.request(C["LLV_REQ_READ_RANGES"], len(ranges), body)
        assert rep.type == C["LLV_REP_READ_RANGES"] and rep.count == len(ranges)
        records = parse_records(rep.body, 0, rep.count)
        assert [(r.addr, r.len) for r in records] == list(ranges), "records not in request order"
        return records

    def walk(self, first: int, stop: int, link: int, max_nodes: int,
             ranges: list[tuple[int, int]] = (), derefs: list[tuple[int, int, int]] = ()
             ) -> WalkResult:
        """WALK: the agent follows the list; its end and every record, as read."""
        rep = self.request(C["LLV_REQ_WALK"], 0,
                           walk_body(first, stop, link, max_nodes, ranges, derefs))
        assert rep.type == C["LLV_REP_WALK"]
        assert len(rep.body) >= WALK_END.size, "WALK reply shorter than its llv_walk_end"
        nodes, reason, nxt = WALK_END.unpack_from(rep.body)
        return WalkResult(nodes, reason, nxt, parse_records(rep.body, WALK_END.size, rep.count))

    def info(self) -> dict:
        rep = self.request(C["LLV_REQ_INFO"], 0)
        assert rep.type == C["LLV_REP_INFO"] and len(rep.body) == INFO.size
        kaslr, pob, levels, _, release = INFO.unpack(rep.body)
        return {"kaslr_offset": kaslr, "page_offset_base": pob, "paging_levels": levels,
                "release": release.split(b"\0")[0].decode()}


# ---- the shared-memory transport (protocol/llview_shm.h) --------------------------------

SHM_H = PROTO_H.with_name("llview_shm.h")


def _shm_constants() -> dict[str, int]:
    text = SHM_H.read_text()
    found = {name: int(value, 0) for name, value in
             re.findall(r"#define\s+(LLV_SHM_\w+)\s+(0x[0-9a-fA-F]+|\d+)u?\b", text)}
    found["LLV_SHM_SIZE"] = 1 << int(re.search(r"LLV_SHM_SIZE\s+\(1u\s*<<\s*(\d+)\)",
                                               text).group(1))
    found["LLV_SHM_AREA_SIZE"] = (found["LLV_SHM_SIZE"] - found["LLV_SHM_CONTROL_SIZE"]) // 2
    found.update({name: int(value) for name, value in
                  re.findall(r"\b(LLV_SHM_\w+)\s*=\s*(\d+)", text)})
    return found


SHM = _shm_constants()
# struct llv_shm_control: magic, version, server_ready, owner, state, generation, request_len,
# reply_len, then the two hellos.
SHM_CONTROL = struct.Struct("<8I")
SHM_CLIENT_HELLO_AT = SHM_CONTROL.size
SHM_SERVER_HELLO_AT = SHM_CLIENT_HELLO_AT + HELLO.size
_OFF = {name: 4 * i for i, name in enumerate(
    ["magic", "version", "server_ready", "owner", "state", "generation", "request_len",
     "reply_len"])}


class ShmClient(Client):
    """One session through a shared-memory region (a mapped /dev/shm file), same requests and
    forgeries as Client. Python has no compare-and-swap on a mapping, so the claim and the
    state moves are plain stores: fine for tests, where one client uses a region at a time
    (the C runtime claims with a real CAS). A stale owner is replaced only if its pid is gone.
    """

    def __init__(self, path: str | Path, psk: bytes, timeout: float = 10.0,
                 handshake: bool = True, owner: int | None = None):
        import mmap

        self.psk = psk
        self.timeout = timeout
        self.send_seq = 0
        self.recv_seq = 0
        self.owner = owner if owner is not None else os.getpid()
        fd = os.open(path, os.O_RDWR)
        try:
            self.mm = mmap.mmap(fd, SHM["LLV_SHM_SIZE"])
        finally:
            os.close(fd)
        if self.field("magic") != SHM["LLV_SHM_MAGIC"] or not self.field("server_ready"):
            self.mm.close()
            raise PeerClosed(f"no agent serves {path}")
        holder = self.field("owner")
        if holder not in (0, self.owner) and _pid_alive(holder):
            self.mm.close()
            raise PeerClosed(f"region {path} is held by pid {holder}")
        self.set_field("owner", self.owner)
        self.seen = self.field("state")
        if handshake:
            self.handshake()

    # ---- the control block -----------------------------------------------------------

    @staticmethod
    def field_of(path: str | Path, name: str) -> int:
        """One control-block word of the region file, read without joining a session."""
        with open(path, "rb") as f:
            f.seek(_OFF[name])
            return struct.unpack("<I", f.read(4))[0]

    def field(self, name: str) -> int:
        return struct.unpack_from("<I", self.mm, _OFF[name])[0]

    def set_field(self, name: str, value: int) -> None:
        """One 4-byte store: struct.pack_into zeroes the word before writing it, and the
        agent may see that 0 (IDLE) in between."""
        word = ctypes.c_uint32.from_buffer(self.mm, _OFF[name])
        word.value = value
        del word  # a live export would keep the mapping from closing

    def publish(self, state: int) -> None:
        """A client's state move: after what it wrote (x86 keeps store order)."""
        if self.field("state") != self.seen:
            raise PeerClosed(f"agent moved the state to {self.field('state')} first")
        self.set_field("state", state)
        self.set_field("generation", (self.field("generation") + 1) & 0xFFFFFFFF)
        self.seen = state

    def wait_change(self, timeout: float | None = None) -> int:
        """Waits for the state to leave the one we published; spins, then naps."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        spin_until = time.monotonic() + 0.02
        while True:
            state = self.field("state")
            if state != self.seen:
                self.seen = state
                return state
            now = time.monotonic()
            if not self.field("server_ready"):
                raise PeerClosed("agent stopped serving the region")
            if now > deadline:
                raise TimeoutError(f"agent did not leave state {state}")
            if now > spin_until:
                time.sleep(0.0001)

    # ---- Client's transport hooks ------------------------------------------------------

    def handshake(self) -> None:
        mine = os.urandom(32)
        self.send_hello(HELLO.pack(MAGIC, VERSION, ROLE_CLIENT, mine))
        state = self.wait_change()
        if state != SHM["LLV_SHM_WELCOME"]:
            raise PeerClosed(f"hello refused (state {state})")
        magic, version, role, theirs = HELLO.unpack_from(self.mm, SHM_SERVER_HELLO_AT)
        assert (magic, version, role) == (MAGIC, VERSION, ROLE_SERVER)
        self.session_material = SESSION_LABEL + mine + theirs
        key = hmac.new(self.psk, self.session_material, hashlib.sha256).digest()
        self.aead = AESGCM(key)

    def send_hello(self, hello: bytes) -> None:
        self.mm[SHM_CLIENT_HELLO_AT:SHM_CLIENT_HELLO_AT + HELLO.size] = hello
        self.publish(SHM["LLV_SHM_HELLO"])

    def send_raw(self, frame: bytes, request_len: int | None = None) -> None:
        """Writes frame into the request area (as much as fits) and publishes REQUEST;
        request_len may lie about its length."""
        at = SHM["LLV_SHM_CONTROL_SIZE"]
        data = bytes(frame[:SHM["LLV_SHM_AREA_SIZE"]])
        self.mm[at:at + len(data)] = data
        self.set_field("request_len", len(frame) if request_len is None else request_len)
        self.publish(SHM["LLV_SHM_REQUEST"])

    def reply_frame(self) -> bytes:
        """The frame in the reply area, as reply_len announces it (bounds-checked)."""
        length = self.field("reply_len")
        if not FRAME_HDR.size + TAG_LEN <= length <= SHM["LLV_SHM_AREA_SIZE"]:
            raise PeerClosed(f"no frame in the reply area (reply_len {length})")
        at = SHM["LLV_SHM_CONTROL_SIZE"] + SHM["LLV_SHM_AREA_SIZE"]
        return bytes(self.mm[at:at + length])

    def recv_frame(self) -> bytes:
        state = self.wait_change()
        if state not in (SHM["LLV_SHM_REPLY"], SHM["LLV_SHM_CLOSED"]):
            raise PeerClosed(f"agent moved to state {state}")
        frame = self.reply_frame()  # CLOSED carries the sealed error, if there is one
        header = frame[:FRAME_HDR.size]
        magic, length, seq = FRAME_HDR.unpack(header)
        assert magic == MAGIC, f"bad magic {magic:#x}"
        if state == SHM["LLV_SHM_CLOSED"] and seq != self.recv_seq:
            raise PeerClosed("agent closed the session without an error reply")
        assert seq == self.recv_seq, f"agent sent seq {seq}, expected {self.recv_seq}"
        assert FRAME_HDR.size + length + TAG_LEN == len(frame), "reply_len disagrees"
        plaintext = self.aead.decrypt(_nonce(ROLE_SERVER, seq), frame[FRAME_HDR.size:], header)
        self.recv_seq += 1
        return plaintext

    def expect_closed(self) -> None:
        state = self.field("state") if self.seen == SHM["LLV_SHM_CLOSED"] else self.wait_change()
        assert state == SHM["LLV_SHM_CLOSED"], f"agent did not close the session (state {state})"

    def close(self) -> None:
        """Gives the region back: state IDLE, then owner 0 (as the runtime does)."""
        if self.mm.closed:
            return
        if self.field("owner") == self.owner:
            self.set_field("state", SHM["LLV_SHM_IDLE"])
            self.set_field("generation", (self.field("generation") + 1) & 0xFFFFFFFF)
            self.set_field("owner", 0)
        self.mm.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
