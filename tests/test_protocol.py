"""The host agent's side of the wire protocol, driven from Python (`cryptography` AES-GCM).

The agent runs in raw-image mode (--image, --pgd, --levels: no kernel needed) on synthetic
guest memory built with real page-table entries, so every test runs in milliseconds. Each
bad frame must get its own error code (sealed with the session key) and a closed connection,
and the agent must keep serving fresh connections afterwards.
"""

from __future__ import annotations

import random
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from helpers import agent_proc
from helpers.fake_kernel import LINK_TEXT, FakeKernel
from helpers.llview_wire import (
    FRAME_HDR,
    HELLO,
    MAGIC,
    MAX_PAGES,
    MAX_PAYLOAD,
    MSG,
    PAGE,
    ROLE_CLIENT,
    VERSION,
    AgentError,
    C,
    Client,
)
from helpers.pagetables import GB1, MB2, GuestMemory

from llview.agent_cli import AGENT_BINARY, READY
from llview.paths import LlviewError

OK, UNMAPPED, NONCANONICAL = C["LLV_OK"], C["LLV_UNMAPPED"], C["LLV_NONCANONICAL"]
USER, OUTSIDE = C["LLV_USER_ADDRESS"], C["LLV_OUTSIDE_RAM"]
READ, SYMS, INFO = C["LLV_REQ_READ"], C["LLV_REQ_SYMS"], C["LLV_REQ_INFO"]

MEM_SIZE = 16 << 20
SINGLE = 0xFFFFFFFF81000000        # one 4 KiB page
RUN = 0xFFFFFFFF82000000           # MAX_PAGES + 8 consecutive 4 KiB pages
RUN_PAGES = MAX_PAGES + 8
LARGE = 0xFF11000000000000         # a 2 MiB page (5-level direct-map style address)
UNMAPPED_VA = 0xFFFFFFFF83000000
OUTSIDE_VA = 0xFFFFFFFF84000000    # maps physical memory past the image


def page_content(va: int) -> bytes:
    """Distinct, recognisable bytes for the page at va."""
    return (struct.pack("<Q", va) + b"llview-test-page") * (PAGE // 24) + b"\xee" * (PAGE % 24)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> tuple[str, int]:
    mem = GuestMemory(MEM_SIZE, 5)
    mem.map(SINGLE, 0x800000)
    mem.fill(0x800000, page_content(SINGLE))
    for i in range(RUN_PAGES):
        pa = 0x900000 + i * PAGE
        mem.map(RUN + i * PAGE, pa)
        mem.fill(pa, page_content(RUN + i * PAGE))
    mem.map(LARGE, 0x400000, MB2)
    for i in range(MB2 // PAGE):
        mem.fill(0x400000 + i * PAGE, page_content(LARGE + i * PAGE))
    mem.map(OUTSIDE_VA, 4 * GB1)
    path = tmp_path_factory.mktemp("image") / "guest.img"
    path.write_bytes(mem.mem)
    return str(path), mem.root


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> tuple[str, bytes]:
    agent_proc.build()
    path = tmp_path_factory.mktemp("key") / "key.bin"
    return str(path), agent_proc.write_key(path)


@pytest.fixture(scope="module")
def agent(image, key):
    path, root = image
    a = agent_proc.Agent(["--image", path, "--pgd", hex(root), "--levels", "5",
                          "--key-file", key[0]])
    yield a
    a.stop()


@pytest.fixture
def psk(key) -> bytes:
    return key[1]


@pytest.fixture(autouse=True)
def agent_survives(request):
    """After every test: the agent is still running and serves a fresh connection."""
    if "agent" not in request.fixturenames:
        yield
        return
    a, psk = request.getfixturevalue("agent"), request.getfixturevalue("psk")
    yield
    assert a.alive(), "the agent died"
    c = Client(a.port, psk)
    assert c.read([SINGLE]) == [(OK, page_content(SINGLE))]
    c.close()


# ---- valid requests ----------------------------------------------------------------------

def test_ready_line_names_raw_mode(agent):
    assert "raw image" in agent.ready_line and "5-level paging" in agent.ready_line


def test_handshake_and_read_one_page(agent, psk):
    c = Client(agent.port, psk)
    assert c.read([SINGLE]) == [(OK, page_content(SINGLE))]
    # Any address inside the page names the page.
    assert c.read([SINGLE + 0xABC]) == [(OK, page_content(SINGLE))]


def test_read_mixed_statuses_keeps_request_order(agent, psk):
    c = Client(agent.port, psk)
    addrs = [RUN + 3 * PAGE, UNMAPPED_VA, 0x0000800000000000 | (1 << 56), 0x00007F0000001000,
             OUTSIDE_VA, LARGE + 0x1FF000, SINGLE]
    got = c.read(addrs)
    assert [s for s, _ in got] == [OK, UNMAPPED, NONCANONICAL, USER, OUTSIDE, OK, OK]
    assert got[0][1] == page_content(RUN + 3 * PAGE)
    assert got[5][1] == page_content(LARGE + 0x1FF000)
    assert got[6][1] == page_content(SINGLE)


def test_read_max_pages_in_one_request(agent, psk):
    c = Client(agent.port, psk)
    addrs = [RUN + i * PAGE for i in range(MAX_PAGES)]
    assert c.read(addrs) == [(OK, page_content(a)) for a in addrs]
    assert c.read([]) == []


def test_many_requests_on_one_connection(agent, psk):
    c = Client(agent.port, psk)
    for i in range(300):
        va = RUN + (i % RUN_PAGES) * PAGE
        assert c.read([va]) == [(OK, page_content(va))]
    assert (c.send_seq, c.recv_seq) == (300, 300)


def test_pipelined_requests_in_one_segment(agent, psk):
    c = Client(agent.port, psk)
    frames = b"".join(c.seal(MSG.pack(READ, 0, 1) + struct.pack("<Q", RUN + i * PAGE))
                      for i in range(5))
    c.sock.sendall(frames)
    for i in range(5):
        rep = c.recv_reply()
        assert rep.body[4:] == page_content(RUN + i * PAGE)


def test_info_and_syms_in_raw_mode(agent, psk):
    c = Client(agent.port, psk)
    info = c.info()
    assert info["paging_levels"] == 5 and info["release"] == "" and info["kaslr_offset"] == 0
    assert c.syms(["init_task", "linux_banner", ""]) == [0, 0, 0]


def test_concurrent_clients(agent, psk):
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            c = Client(agent.port, psk)
            for i in range(100):
                va = RUN + ((i + n) % RUN_PAGES) * PAGE
                assert c.read([va]) == [(OK, page_content(va))]
            c.close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# ---- bad frames: each gets its error code, then the connection closes -------------------

def read_frame(c: Client, va: int = SINGLE, seq: int | None = None) -> bytes:
    return c.seal(MSG.pack(READ, 0, 1) + struct.pack("<Q", va), seq=seq)


def test_tampered_ciphertext(agent, psk):
    c = Client(agent.port, psk)
    frame = bytearray(read_frame(c))
    frame[FRAME_HDR.size + 3] ^= 0x01
    c.sock.sendall(frame)
    assert c.expect_error().code == C["LLV_E_AUTH"]


def test_tampered_tag(agent, psk):
    c = Client(agent.port, psk)
    frame = bytearray(read_frame(c))
    frame[-1] ^= 0x80
    c.sock.sendall(frame)
    assert c.expect_error().code == C["LLV_E_AUTH"]


def test_tampered_header_length(agent, psk):
    """The header is authenticated: a shortened len (with the body cut to match) fails the
    tag even though every field still looks valid."""
    c = Client(agent.port, psk)
    frame = read_frame(c)
    magic, length, seq = FRAME_HDR.unpack_from(frame)
    c.sock.sendall(FRAME_HDR.pack(magic, length - 1, seq) + frame[FRAME_HDR.size:-1])
    assert c.expect_error().code == C["LLV_E_AUTH"]


def test_tampered_header_magic(agent, psk):
    c = Client(agent.port, psk)
    frame = bytearray(read_frame(c))
    frame[0] ^= 0xFF
    c.sock.sendall(frame)
    assert c.expect_error().code == C["LLV_E_BAD_MAGIC"]


def test_replayed_frame(agent, psk):
    c = Client(agent.port, psk)
    frame = read_frame(c)
    c.sock.sendall(frame)
    assert c.recv_reply().body[4:] == page_content(SINGLE)
    c.sock.sendall(frame)
    assert c.expect_error().code == C["LLV_E_SEQUENCE"]


def test_reordered_frames(agent, psk):
    c = Client(agent.port, psk)
    first, second = read_frame(c), read_frame(c)
    c.sock.sendall(second + first)
    assert c.expect_error().code == C["LLV_E_SEQUENCE"]


def test_frame_with_a_rewritten_seq_does_not_authenticate(agent, psk):
    """Seq is in both the nonce and the AAD: relabelling frame 1 as 0 breaks the tag."""
    c = Client(agent.port, psk)
    frame = bytearray(read_frame(c, seq=1))
    struct.pack_into("<Q", frame, 8, 0)
    c.sock.sendall(frame)
    assert c.expect_error().code == C["LLV_E_AUTH"]


@pytest.mark.parametrize("cut", [3, FRAME_HDR.size, FRAME_HDR.size + 5, -1])
def test_truncated_frame_then_close(agent, psk, cut):
    c = Client(agent.port, psk)
    c.sock.sendall(read_frame(c)[:cut])
    c.sock.shutdown(socket.SHUT_WR)
    c.expect_closed()


def test_oversized_header_len(agent, psk):
    c = Client(agent.port, psk)
    c.sock.sendall(FRAME_HDR.pack(MAGIC, MAX_PAYLOAD + 1, 0))  # no body follows: refused first
    assert c.expect_error().code == C["LLV_E_TOO_LARGE"]


def test_huge_header_len(agent, psk):
    c = Client(agent.port, psk)
    c.sock.sendall(FRAME_HDR.pack(MAGIC, 0xFFFFFFFF, 0))
    assert c.expect_error().code == C["LLV_E_TOO_LARGE"]


def test_wrong_key(agent, psk):
    c = Client(agent.port, bytes(b ^ 0x5A for b in psk))
    c.sock.sendall(read_frame(c))
    # The agent's error reply is sealed with its own session key, which we cannot open.
    with pytest.raises(InvalidTag):
        c.recv_frame()
    c.expect_closed()


@pytest.mark.parametrize("mtype", [0, C["LLV_REP_READ"], C["LLV_REP_ERROR"], 99, 0xFFFF])
def test_unknown_or_reply_type(agent, psk, mtype):
    c = Client(agent.port, psk)
    c.sock.sendall(c.seal(MSG.pack(mtype, 0, 0)))
    err = c.expect_error()
    assert err.code == C["LLV_E_BAD_TYPE"] and str(mtype) in err.message


@pytest.mark.parametrize("count,naddrs", [(2, 1), (1, 2), (0, 1), (1, 0)])
def test_read_count_mismatch(agent, psk, count, naddrs):
    c = Client(agent.port, psk)
    body = b"".join(struct.pack("<Q", SINGLE) for _ in range(naddrs))
    c.sock.sendall(c.seal(MSG.pack(READ, 0, count) + body))
    assert c.expect_error().code == C["LLV_E_MALFORMED"]


def test_read_with_a_ragged_body(agent, psk):
    c = Client(agent.port, psk)
    c.sock.sendall(c.seal(MSG.pack(READ, 0, 1) + struct.pack("<Q", SINGLE) + b"\0"))
    assert c.expect_error().code == C["LLV_E_MALFORMED"]


def test_read_over_max_pages(agent, psk):
    c = Client(agent.port, psk)
    n = MAX_PAGES + 1
    body = b"".join(struct.pack("<Q", RUN + i * PAGE) for i in range(n))
    c.sock.sendall(c.seal(MSG.pack(READ, 0, n) + body))
    err = c.expect_error()
    assert err.code == C["LLV_E_TOO_LARGE"] and str(MAX_PAGES) in err.message


def test_read_with_a_huge_count_and_no_body(agent, psk):
    c = Client(agent.port, psk)
    c.sock.sendall(c.seal(MSG.pack(READ, 0, 0xFFFFFFFF)))
    assert c.expect_error().code == C["LLV_E_TOO_LARGE"]


def test_message_shorter_than_its_header(agent, psk):
    c = Client(agent.port, psk)
    c.sock.sendall(c.seal(b"\x01\x00\x00"))
    assert c.expect_error().code == C["LLV_E_MALFORMED"]


@pytest.mark.parametrize("count,body", [
    (2, b"init_task\0"),               # fewer names than announced
    (1, b"init_task"),                 # name not terminated
    (1, b"init_task\0extra"),          # bytes after the last name
    (0x7FFFFFFF, b""),                 # absurd count
])
def test_malformed_syms(agent, psk, count, body):
    c = Client(agent.port, psk)
    c.sock.sendall(c.seal(MSG.pack(SYMS, 0, count) + body))
    err = c.expect_error()
    assert err.code in (C["LLV_E_MALFORMED"], C["LLV_E_TOO_LARGE"])
    assert err.code == (C["LLV_E_TOO_LARGE"] if count > 1000 else C["LLV_E_MALFORMED"])


@pytest.mark.parametrize("count,naddrs", [(2, 1), (1, 2), (0, 1)])
def test_symbolize_count_mismatch(agent, psk, count, naddrs):
    c = Client(agent.port, psk)
    body = b"".join(struct.pack("<Q", SINGLE) for _ in range(naddrs))
    c.sock.sendall(c.seal(MSG.pack(C["LLV_REQ_SYMBOLIZE"], 0, count) + body))
    assert c.expect_error().code == C["LLV_E_MALFORMED"]


def test_symbolize_over_its_limit(agent, psk):
    c = Client(agent.port, psk)
    n = C["LLV_MAX_SYMBOLIZE"] + 1
    c.sock.sendall(c.seal(MSG.pack(C["LLV_REQ_SYMBOLIZE"], 0, n) + b"\0" * 8 * n))
    err = c.expect_error()
    assert err.code == C["LLV_E_TOO_LARGE"] and str(C["LLV_MAX_SYMBOLIZE"]) in err.message


def test_symbolize_in_raw_mode_knows_nothing(agent, psk):
    c = Client(agent.port, psk)
    assert c.symbolize([SINGLE, 0, 2**64 - 1]) == [(0, 0, "")] * 3


def test_info_with_a_body(agent, psk):
    c = Client(agent.port, psk)
    c.sock.sendall(c.seal(MSG.pack(INFO, 0, 0) + b"x"))
    assert c.expect_error().code == C["LLV_E_MALFORMED"]


def test_error_after_valid_requests_uses_the_next_seq(agent, psk):
    c = Client(agent.port, psk)
    c.read([SINGLE])
    c.info()
    c.sock.sendall(c.seal(MSG.pack(77, 0, 0)))
    assert c.expect_error().code == C["LLV_E_BAD_TYPE"]
    assert c.recv_seq == 3


# ---- handshake and timeouts --------------------------------------------------------------

@pytest.mark.parametrize("hello", [
    HELLO.pack(MAGIC ^ 1, VERSION, ROLE_CLIENT, b"\0" * 32),
    HELLO.pack(MAGIC, VERSION + 1, ROLE_CLIENT, b"\0" * 32),
    HELLO.pack(MAGIC, VERSION, C["LLV_ROLE_SERVER"], b"\0" * 32),  # a server posing as client
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\0" * 16,  # not an llview peer
])
def test_bad_hello_closes_without_reply(agent, psk, hello):
    s = socket.create_connection(("127.0.0.1", agent.port), timeout=5)
    s.sendall(hello)
    try:
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass  # closed with our surplus bytes unread: a reset, still no reply


def test_silent_and_half_open_clients_do_not_block_others(image, key):
    path, root = image
    a = agent_proc.Agent(["--image", path, "--pgd", hex(root), "--levels", "5",
                          "--key-file", key[0], "--idle-timeout", "1"])
    try:
        silent = socket.create_connection(("127.0.0.1", a.port), timeout=5)  # never says hello
        half = Client(a.port, key[1])
        half.sock.sendall(read_frame(half)[:10])  # a frame that never completes
        idle = Client(a.port, key[1])
        served = Client(a.port, key[1])
        assert served.read([SINGLE]) == [(OK, page_content(SINGLE))]
        began = time.monotonic()
        assert silent.recv(1) == b""
        half.expect_closed()
        idle.expect_closed()
        assert time.monotonic() - began < 4
        assert a.alive()
        served.expect_closed()  # served, then quiet: dropped too
        fresh = Client(a.port, key[1])
        assert fresh.read([SINGLE]) == [(OK, page_content(SINGLE))]
    finally:
        a.stop()


def test_listen_refuses_non_loopback(image, key):
    path, root = image
    with pytest.raises(LlviewError, match="not a loopback address"):
        agent_proc.Agent(["--image", path, "--pgd", hex(root), "--levels", "5",
                          "--key-file", key[0], "--listen", "0.0.0.0:0"])


def test_world_readable_key_is_refused(image, tmp_path):
    path, root = image
    k = tmp_path / "open.key"
    k.write_bytes(b"k" * 32)
    k.chmod(0o644)
    with pytest.raises(LlviewError, match="readable by others"):
        agent_proc.Agent(["--image", path, "--pgd", hex(root), "--levels", "5",
                          "--key-file", str(k)])


# ---- the q35 RAM-file layout: RAM above 4 GiB ------------------------------------------

def test_q35_ram_file_maps_high_memory_above_4gib(tmp_path, key):
    """A 3 GiB q35 guest keeps 2 GiB below 4 GiB and the rest from 4 GiB up; the backend
    file holds them back to back. Tables and data live in the high part."""
    ram_size, low = 3 * GB1, 2 * GB1
    high = GuestMemory(16 << 20, 4, phys_base=4 * GB1)
    va_high, va_low, va_hole = 0xFFFFFFFF81000000, 0xFFFFFFFF81001000, 0xFFFFFFFF81002000
    high.map(va_high, 4 * GB1 + 0x800000)
    high.fill(4 * GB1 + 0x800000, page_content(va_high))
    high.map(va_low, 0x7000)
    high.map(va_hole, low + 0x1000)    # below 4 GiB but above low RAM: the PCI hole
    path = tmp_path / "q35.ram"
    with open(path, "wb") as f:
        f.truncate(ram_size)           # sparse
        f.seek(0x7000)
        f.write(page_content(va_low))
        f.seek(low)
        f.write(high.mem)
    a = agent_proc.Agent(["--ram", str(path), "--pgd", hex(high.root), "--levels", "4",
                          "--key-file", key[0]])
    try:
        c = Client(a.port, key[1])
        got = c.read([va_high, va_low, va_hole])
        assert got == [(OK, page_content(va_high)), (OK, page_content(va_low)), (OUTSIDE, None)]
    finally:
        a.stop()


# ---- start-up errors and the `llview agent serve` wrapper ------------------------------

def test_ram_without_a_kernel_waits_then_gives_up(tmp_path, key):
    ram = tmp_path / "empty.ram"
    with open(ram, "wb") as f:
        f.truncate(64 << 20)
        f.seek(0x5000)
        f.write(b"OSRELEASE=%s\n\0BUILD-ID=%20phN\n\0PAGESIZE=%ld\n")  # the image's formats
    began = time.monotonic()
    proc = subprocess.run([str(agent_proc.AGENT), "--ram", str(ram), "--key-file", key[0],
                           "--listen", "127.0.0.1:0", "--wait", "1"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "waiting for the guest kernel" in proc.stderr
    assert "gave up after 1 s: no VMCOREINFO note in guest RAM" in proc.stderr
    assert time.monotonic() - began < 10


def llview_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llview.cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_serve_refuses_a_non_loopback_address(image, key):
    r = llview_cli("agent", "serve", "--image", image[0], "--pgd", hex(image[1]), "--levels",
                   "5", "--key", key[0], "--listen", "0.0.0.0:7070")
    assert r.returncode == 1 and "not a loopback address" in r.stderr


def test_serve_names_a_missing_key(image, tmp_path):
    r = llview_cli("agent", "serve", "--image", image[0], "--key", str(tmp_path / "nokey"))
    assert r.returncode == 1 and "key file not found" in r.stderr


def test_serve_runs_the_agent(image, key):
    """The wrapper execs the agent (same pid) which prints its ready line and serves."""
    proc = subprocess.Popen([sys.executable, "-m", "llview.cli", "agent", "serve", "--image",
                             image[0], "--pgd", hex(image[1]), "--levels", "5", "--key",
                             key[0], "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = READY.search(line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        assert Path(f"/proc/{proc.pid}/exe").resolve() == AGENT_BINARY.resolve()
        c = Client(int(m.group(2)), key[1])
        assert c.read([SINGLE]) == [(OK, page_content(SINGLE))]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


# ---- kernel discovery on a synthetic kernel (VMCOREINFO + kallsyms, no guest) -----------

def start_fake_kernel_agent(tmp_path, key, kernel: FakeKernel, wait: int = 30):
    mem = GuestMemory(16 << 20, 4, table_base=0x900000)
    kernel.build(mem)
    path = tmp_path / "fake-kernel.img"
    path.write_bytes(mem.mem)
    return agent_proc.Agent(["--image", str(path), "--key-file", key[0], "--wait", str(wait)])


def test_synthetic_kernel_found_and_symbols_decoded(tmp_path, key):
    kernel = FakeKernel()
    a = start_fake_kernel_agent(tmp_path, key, kernel)
    try:
        assert (f"release {kernel.release}, KASLR slide {kernel.slide:#x}, 4-level paging, "
                f"{len(kernel.default_symbols())} symbols") in a.ready_line
        c = Client(a.port, key[1])
        assert c.info() == {"kaslr_offset": kernel.slide,
                            "page_offset_base": kernel.page_offset_base_value,
                            "paging_levels": 4, "release": kernel.release}
        unique = {}
        for typ, name, addr in kernel.symbols:
            if name not in unique or typ.isupper():
                unique[name] = addr
        names = list(unique)
        assert c.syms(names) == [unique[n] for n in names]
        assert len(max(names, key=len)) > 127  # the two-byte name length was decoded
        (init_task,) = c.syms(["init_task"])
        assert c.read_bytes(init_task, 15) == b"init-task-bytes"
    finally:
        err = a.stop()
    # The stale note came first in RAM and was skipped.
    assert "kallsyms: 10 symbols decoded" in err and "VMCOREINFO at physical 0x302000" in err


def test_synthetic_kernel_symbolizes_as_kallsyms_lookup(tmp_path, key):
    """Address -> symbol as the kernel's kallsyms_lookup(): the highest start <= address, the
    first of its aliases, sized to the next higher start (_end for the last); nothing outside
    _stext.._end. The table is deliberately not in address order: the agent sorts it."""
    kernel = FakeKernel()
    t = kernel.text
    kernel.symbols = [
        ("A", "fixed_percpu_data", 0x0), ("T", "_text", t), ("T", "_stext", t + 0x1000),
        ("T", "handler_b", t + 0x2400), ("T", "handler_a", t + 0x2000),
        ("t", "alias_first", t + 0x3000), ("t", "alias_second", t + 0x3000),
        ("D", "init_task", t + 0x300000), ("D", "linux_banner", t + 0x300800),
        ("D", "page_offset_base", t + 0x301000), ("B", "_end", t + 0x400000),
    ]
    a = start_fake_kernel_agent(tmp_path, key, kernel)
    try:
        c = Client(a.port, key[1])
        assert c.symbolize([t + 0x2000, t + 0x2010, t + 0x2400, t + 0x3004, t + 0x301008]) == [
            (t + 0x2000, 0x400, "handler_a"), (t + 0x2000, 0x400, "handler_a"),
            (t + 0x2400, 0xC00, "handler_b"), (t + 0x3000, 0x2FD000, "alias_first"),
            (t + 0x301000, 0xFF000, "page_offset_base")]
        outside = [t, t + 0x400000, 0x1C000, 0xFFFF888000001000, 0x1000]
        assert c.symbolize(outside) == [(0, 0, "")] * len(outside)
    finally:
        a.stop()


def test_synthetic_kernel_with_mismatched_stext_is_refused(tmp_path, key):
    kernel = FakeKernel(note_stext=LINK_TEXT + 0x5000)
    with pytest.raises(LlviewError, match=r"kallsyms gives _stext = .* but VMCOREINFO says"):
        start_fake_kernel_agent(tmp_path, key, kernel, wait=1)


def test_agent_exits_when_the_guest_memory_file_is_removed(image, key, tmp_path):
    """A stopped VM's RAM file is unlinked; serving the frozen copy would mislead an IDS."""
    copy = tmp_path / "vm.ram"
    copy.write_bytes(Path(image[0]).read_bytes())
    a = agent_proc.Agent(["--image", str(copy), "--pgd", hex(image[1]), "--levels", "5",
                          "--key-file", key[0]])
    copy.unlink()
    try:
        assert a.proc.wait(timeout=5) == 3
    finally:
        err = a.stop()
    assert "guest memory file was removed" in err


def test_random_messages_never_crash_the_agent(agent, psk):
    """Authenticated messages with random types, counts and bodies, and raw garbage after
    the handshake: each gets a reply or a REP_ERROR, never a crash or a hang."""
    rng = random.Random(7)
    errors_seen = set()
    for _ in range(150):
        c = Client(agent.port, psk, timeout=5)
        if rng.random() < 0.2:
            c.sock.sendall(rng.randbytes(rng.randrange(1, 200)))
            c.sock.shutdown(socket.SHUT_WR)
            try:
                while c.sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            c.close()
            continue
        mtype = rng.choice([READ, SYMS, INFO, rng.randrange(0, 1 << 16)])
        count = rng.choice([0, 1, 2, 63, 64, 65, rng.randrange(1 << 32)])
        body = rng.randbytes(rng.choice([0, 7, 8, 16, 64 * 8, rng.randrange(0, 4096)]))
        c.sock.sendall(c.seal(MSG.pack(mtype, rng.randrange(1 << 16), count) + body))
        try:
            rep = c.recv_reply()
            assert rep.type == mtype + 1 and rep.count == count
        except AgentError as e:
            errors_seen.add(e.code)
            c.expect_closed()
        c.close()
    assert {C["LLV_E_MALFORMED"], C["LLV_E_BAD_TYPE"], C["LLV_E_TOO_LARGE"]} <= errors_seen
