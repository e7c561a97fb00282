"""A Python peer for the llview wire protocol, built on `cryptography`'s AES-GCM and hmac.

It is an independent implementation of docs/protocol.md used to drive the C agent in tests,
so it can also forge what a real client never sends: tampered, replayed, reordered,
truncated and oversized frames. Constants are read from agents/common/llview_proto.h, the
one definition of the protocol.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PROTO_H = Path(__file__).resolve().parents[2] / "agents" / "common" / "llview_proto.h"


def _constants() -> dict[str, int]:
    text = PROTO_H.read_text()
    found = {name: int(value, 0) for name, value in
             re.findall(r"#define\s+(LLV_\w+)\s+(0x[0-9a-fA-F]+|\d+)u?\b", text)}
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
MAX_PAYLOAD = MSG.size + MAX_PAGES * (4 + PAGE)  # LLV_MAX_PAYLOAD


class PeerClosed(Exception):
    """The agent closed the connection."""


class AgentError(Exception):
    """The agent answered REP_ERROR."""

    def __init__(self, code: int, message: str):
        super().__init__(f"agent error {code}: {message}")
        self.code = code
        self.message = message


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
        self.sock.sendall(self.seal(MSG.pack(mtype, 0, count) + body))
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

    def info(self) -> dict:
        rep = self.request(C["LLV_REQ_INFO"], 0)
        assert rep.type == C["LLV_REP_INFO"] and len(rep.body) == INFO.size
        kaslr, pob, levels, _, release = INFO.unpack(rep.body)
        return {"kaslr_offset": kaslr, "page_offset_base": pob, "paging_levels": levels,
                "release": release.split(b"\0")[0].decode()}
