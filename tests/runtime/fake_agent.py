"""A test-double llview agent: speaks the wire protocol of
protocol/llview_proto.h (handshake, AES-256-GCM frames with sequence
nonces) with the `cryptography` package, and serves pages and symbols from
Python dicts, so the runtime can be tested without a guest."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from helpers.llview_wire import FRAME_HDR, HELLO, INFO, MSG, SYMBOL, C  # one protocol source

MAGIC, VERSION, PAGE = C["LLV_MAGIC"], C["LLV_VERSION"], C["LLV_PAGE_SIZE"]
FRAME = FRAME_HDR
ROLE_CLIENT, ROLE_SERVER = C["LLV_ROLE_CLIENT"], C["LLV_ROLE_SERVER"]
REQ_READ, REP_READ = C["LLV_REQ_READ"], C["LLV_REP_READ"]
REQ_SYMS, REP_SYMS = C["LLV_REQ_SYMS"], C["LLV_REP_SYMS"]
REQ_INFO, REP_INFO, REP_ERROR = C["LLV_REQ_INFO"], C["LLV_REP_INFO"], C["LLV_REP_ERROR"]
REQ_SYMBOLIZE, REP_SYMBOLIZE = C["LLV_REQ_SYMBOLIZE"], C["LLV_REP_SYMBOLIZE"]
REQ_READ_RANGES, REP_READ_RANGES = C["LLV_REQ_READ_RANGES"], C["LLV_REP_READ_RANGES"]
REQ_WALK, REP_WALK = C["LLV_REQ_WALK"], C["LLV_REP_WALK"]
WALK_STOP, WALK_LIMIT, WALK_FULL, WALK_BAD_LINK = (
    C["LLV_WALK_STOP"], C["LLV_WALK_LIMIT"], C["LLV_WALK_FULL"], C["LLV_WALK_BAD_LINK"])
RANGE = struct.Struct("<QII")          # struct llv_range and struct llv_range_data
WALK = struct.Struct("<QQIIHHI")       # struct llv_walk
WALK_RANGE = struct.Struct("<iI")
WALK_DEREF = struct.Struct("<iiII")
WALK_END = struct.Struct("<IIQ")
MAX_PAYLOAD = MSG.size + C["LLV_MAX_PAGES"] * (4 + PAGE)
OK, UNMAPPED, NONCANONICAL = C["LLV_OK"], C["LLV_UNMAPPED"], C["LLV_NONCANONICAL"]
E_AUTH, E_MALFORMED = C["LLV_E_AUTH"], C["LLV_E_MALFORMED"]
KERNEL_IMAGE_MAP = 0xFFFFFFFF80000000  # __START_KERNEL_map: where a kernel's image lives


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


@dataclass
class FakeAgent:
    """Serves `pages` (page number -> 4096 bytes, or a callable returning
    them, called per fetch) and `symbols` (name -> address). mode "silent"
    accepts connections and never answers; "drop_reads" closes the
    connection at the first READ request. `port` 0 picks a free port; a given one lets
    a restarted agent listen where the stopped one did. close() also ends the session
    being served, as a killed agent would."""

    key: bytes
    pages: dict[int, bytes | Callable[[], bytes]] = field(default_factory=dict)
    symbols: dict[str, int] = field(default_factory=dict)
    mode: str = "normal"
    release: bytes = b"6.1.0-test"
    read_requests: list[list[int]] = field(default_factory=list)
    walk_requests: list[tuple] = field(default_factory=list)
    requests: int = 0
    port: int = 0
    delay: float = 0.0  # seconds before each READ reply: a slow guest

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._active: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        active = self._active
        if active is not None:
            try:
                active.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self.sock.close()
        for conn in self._held:
            conn.close()

    def __enter__(self) -> FakeAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            if self.mode == "silent":
                self._held.append(conn)  # keep it open, never answer
                continue
            conn.settimeout(10)
            self._active = conn
            try:
                self._session(conn)
            except (ConnectionError, TimeoutError, OSError):
                pass
            finally:
                self._active = None
                conn.close()

    def _session(self, conn: socket.socket) -> None:
        magic, version, role, client_random = HELLO.unpack(_recv_exact(conn, HELLO.size))
        if magic != MAGIC or version != VERSION or role != ROLE_CLIENT:
            return
        server_random = os.urandom(32)
        conn.sendall(HELLO.pack(MAGIC, VERSION, ROLE_SERVER, server_random))
        session_key = hmac.new(
            self.key, b"llview-v1 session" + client_random + server_random, hashlib.sha256
        ).digest()
        aead = AESGCM(session_key)
        recv_seq = send_seq = 0

        def send(plain: bytes) -> None:
            nonlocal send_seq
            header = FRAME.pack(MAGIC, len(plain), send_seq)
            nonce = struct.pack("<IQ", ROLE_SERVER, send_seq)
            conn.sendall(header + aead.encrypt(nonce, plain, header))
            send_seq += 1

        while True:
            header = _recv_exact(conn, FRAME.size)
            magic, length, seq = FRAME.unpack(header)
            body = _recv_exact(conn, length + 16)
            nonce = struct.pack("<IQ", ROLE_CLIENT, seq)
            try:
                plain = aead.decrypt(nonce, body, header)
            except Exception:
                send(MSG.pack(REP_ERROR, 0, E_AUTH) + b"frame did not authenticate\0")
                return
            if seq != recv_seq:
                return
            recv_seq += 1
            self.requests += 1
            if self.mode == "drop_reads" and MSG.unpack_from(plain)[0] == REQ_READ:
                return  # the agent goes away mid-scan
            if self.delay and MSG.unpack_from(plain)[0] == REQ_READ:
                time.sleep(self.delay)
            send(self._answer(plain))

    def _answer(self, plain: bytes) -> bytes:
        kind, _flags, count = MSG.unpack_from(plain)
        body = plain[MSG.size :]
        if kind == REQ_READ:
            addrs = list(struct.unpack_from(f"<{count}Q", body))
            self.read_requests.append(addrs)
            statuses, data = [], b""
            for addr in addrs:
                page = self.pages.get(addr >> 12)
                canonical = addr >> 47 in (0, 0x1FFFF)
                if page is None:
                    statuses.append(UNMAPPED if canonical else NONCANONICAL)
                    continue
                statuses.append(OK)
                data += page() if callable(page) else page
            return MSG.pack(REP_READ, 0, count) + struct.pack(f"<{count}I", *statuses) + data
        if kind == REQ_SYMS:
            names = body.split(b"\0")[:count]
            addrs = [self.symbols.get(name.decode(), 0) for name in names]
            return MSG.pack(REP_SYMS, 0, count) + struct.pack(f"<{count}Q", *addrs)
        if kind == REQ_SYMBOLIZE:  # symbols in the kernel image map; the last one 4 KiB long
            by_addr = sorted((a, n) for n, a in self.symbols.items() if a >= KERNEL_IMAGE_MAP)
            fixed, names = b"", b""
            for addr in struct.unpack_from(f"<{count}Q", body):
                below = [(a, n) for a, n in by_addr if a <= addr < by_addr[-1][0] + PAGE]
                if not below:
                    fixed, names = fixed + SYMBOL.pack(0, 0), names + b"\0"
                    continue
                start, name = below[-1]
                higher = [a for a, _ in by_addr if a > start] + [by_addr[-1][0] + PAGE]
                fixed += SYMBOL.pack(start, higher[0] - start)
                names += name.encode() + b"\0"
            return MSG.pack(REP_SYMBOLIZE, 0, count) + fixed + names
        if kind == REQ_READ_RANGES:
            records = [self._record(a, n) for a, n, _ in RANGE.iter_unpack(body[:count * 16])]
            return MSG.pack(REP_READ_RANGES, 0, count) + b"".join(records)
        if kind == REQ_WALK:
            return self._walk(body)
        if kind == REQ_INFO:
            return MSG.pack(REP_INFO, 0, 0) + INFO.pack(0x31200000, 0, 5, 0, self.release)
        return MSG.pack(REP_ERROR, 0, E_MALFORMED) + b"unknown request\0"

    def _bytes(self, addr: int, n: int) -> bytes | None:
        out = b""
        while n:
            page = self.pages.get(addr >> 12)
            if page is None:
                return None
            data = page() if callable(page) else page
            take = min(n, PAGE - (addr & 4095))
            out += data[addr & 4095:(addr & 4095) + take]
            addr, n = addr + take, n - take
        return out

    def _record(self, addr: int, n: int) -> bytes:
        data = self._bytes(addr, n)
        if data is None:
            return RANGE.pack(addr, n, UNMAPPED)
        return RANGE.pack(addr, n, OK) + data

    def _walk(self, body: bytes) -> bytes:
        """LLV_REQ_WALK as llview_proto.h specifies it (no limit checks: a test double)."""
        first, stop, link, max_nodes, nranges, nderefs, _ = WALK.unpack_from(body)
        at = WALK.size
        ranges = [WALK_RANGE.unpack_from(body, at + i * 8) for i in range(nranges)]
        at += nranges * 8
        derefs = [WALK_DEREF.unpack_from(body, at + i * 16)[:3] for i in range(nderefs)]
        self.walk_requests.append((first, stop, link, ranges, derefs))
        records: list[bytes] = []
        size = MSG.size + WALK_END.size
        link_at, nodes, reason = first, 0, WALK_LIMIT
        while nodes < max_nodes:
            raw = self._bytes(link_at, 8)
            node_records = [self._record(link_at, 8)]
            if raw is None:
                reason = WALK_BAD_LINK
                records += node_records
                break
            node = struct.unpack("<Q", raw)[0]
            if node in (0, stop):
                reason = WALK_STOP
                records += node_records
                break
            node_records += [self._record(node + o, n) for o, n in ranges]
            for pointer, offset, n in derefs:
                value = self._bytes(node + pointer, 8)
                if value and struct.unpack("<Q", value)[0]:
                    node_records.append(self._record(struct.unpack("<Q", value)[0] + offset, n))
            grown = sum(len(r) for r in node_records)
            if size + grown > MAX_PAYLOAD:
                reason = WALK_FULL
                break
            size += grown
            records += node_records
            nodes += 1
            link_at = node + link
        end = WALK_END.pack(nodes, reason, link_at)
        return MSG.pack(REP_WALK, 0, len(records)) + end + b"".join(records)
