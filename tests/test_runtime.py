"""Tests of the IDS runtime (runtime/): a hand-made IDS (tests/runtime/test_ids.c)
linked with libllview_rt.a runs against a test-double agent (tests/runtime/
fake_agent.py) that serves synthetic guest pages over the real encrypted
protocol. Checks the page cache (hits, read-ahead, straddling reads,
freshness), errors (unmapped, NULL, read budget, stores, symbols, wrong key,
dead agent, bad options), printk formatting and the record/alert output."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNTIME = REPO / "runtime"
sys.path.insert(0, str(Path(__file__).resolve().parent / "runtime"))

from fake_agent import PAGE, FakeAgent  # noqa: E402

BANNER_ADDR = 0xFFFFFFFF82000100
BANNER = b"Linux version 6.1.0-test (llview@test) (gcc 12) #1 SMP PREEMPT_DYNAMIC\n"
LIST_SYM = 0xFFFFFFFF82001000
CYCLE_SYM = 0xFFFFFFFF82001008
COUNTER_ADDR = 0xFFFFFFFF82400000
NODE_A = 0xFFFF888000010040
NODE_B = 0xFFFF888000012000 - 12  # its value field straddles two pages
NODE_C = 0xFFFF888000020200
ODD_NAME = b'a"b\\c\n\x01\xff\xc3\xa9'
PAGE_END = 0xFFFF888000041000 - 6  # "abcdef" | "ghij\0" across a page boundary
CYCLE_X, CYCLE_Y = 0xFFFF888000030000, 0xFFFF888000030100


class Memory:
    """Synthetic guest memory: page number -> bytearray."""

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}

    def write(self, addr: int, data: bytes) -> None:
        for i, byte in enumerate(data):
            page = self.pages.setdefault((addr + i) >> 12, bytearray(PAGE))
            page[(addr + i) & 4095] = byte

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.pages[(addr + i) >> 12][(addr + i) & 4095] for i in range(n))


def node(next_addr: int, value: int, name: bytes) -> bytes:
    return struct.pack("<QQ", next_addr, value) + name.ljust(16, b"\0")


def make_guest() -> tuple[dict, dict[str, int], Memory]:
    mem = Memory()
    mem.write(BANNER_ADDR, BANNER + b"\0")
    mem.write(LIST_SYM, struct.pack("<QQ", NODE_A, CYCLE_X))
    mem.write(NODE_A, node(NODE_B, 1, b"first"))
    mem.write(NODE_B, node(NODE_C, 0x1122334455667788, b"second"))
    mem.write(NODE_C, node(0, 0xDEADBEEF, ODD_NAME))
    mem.write(CYCLE_X, node(CYCLE_Y, 0, b"x"))
    mem.write(CYCLE_Y, node(CYCLE_X, 0, b"y"))
    pattern = bytes((i * 7) & 0xFF for i in range(2 * PAGE))
    mem.write(PAGE_END - PAGE + 6, pattern)
    mem.write(PAGE_END, b"abcdefghij\0")
    pages: dict = {num: bytes(data) for num, data in mem.pages.items()}
    served = {"count": 0}

    def counter_page() -> bytes:
        served["count"] += 1
        return struct.pack("<Q", served["count"]).ljust(PAGE, b"\0")

    pages[COUNTER_ADDR >> 12] = counter_page
    symbols = {
        "linux_banner": BANNER_ADDR,
        "test_list": LIST_SYM,
        "test_cycle": CYCLE_SYM,
        "test_counter": COUNTER_ADDR,
        "test_page_end": PAGE_END,
    }
    return pages, symbols, mem


@pytest.fixture(scope="session")
def ids_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    subprocess.run(["make", "-s", "-C", str(RUNTIME)], check=True)
    out = tmp_path_factory.mktemp("ids") / "test_ids"
    subprocess.run(
        [
            "clang-19", "-O2", "-Wall", "-Wextra", "-Werror",
            "-I", str(RUNTIME / "include"), "-I", str(RUNTIME / "src"),
            "-I", str(REPO / "kernel_headers"),
            str(REPO / "tests/runtime/test_ids.c"),
            str(RUNTIME / "build/libllview_rt.a"), "-lcrypto", "-o", str(out),
        ],
        check=True,
    )
    return out


@pytest.fixture
def key(tmp_path: Path) -> tuple[bytes, Path]:
    secret = os.urandom(32)
    path = tmp_path / "key.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, secret)
    os.close(fd)
    return secret, path


@pytest.fixture
def agent(key: tuple[bytes, Path]):
    pages, symbols, _ = make_guest()
    with FakeAgent(key=key[0], pages=pages, symbols=symbols) as fake:
        yield fake


def run_ids(
    binary: Path, scenario: str, agent: FakeAgent | None, key_path: Path, *extra: str,
    url: str | None = None, timeout: float = 20,
) -> subprocess.CompletedProcess:
    env = dict(os.environ, LLVIEW_TEST_SCENARIO=scenario)
    args = [str(binary), "--agent", url or agent.url, "--key", str(key_path), *extra]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def text_value(raw: bytes) -> str:
    """The runtime's text-mode quoting, written out independently."""
    out = []
    for b in raw:
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif b < 0x20 or b >= 0x7F:
            out.append(f"\\x{b:02x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


# ---- the page cache and guest reads ----


def test_walk_text_records(ids_binary, agent, key):
    r = run_ids(ids_binary, "walk", agent, key[1])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"addr=0x{NODE_A:x} value=1 neg=-1 name=first copy=first",
        f"addr=0x{NODE_B:x} value={0x1122334455667788} neg={-0x1122334455667788} "
        "name=second copy=second",
        f"addr=0x{NODE_C:x} value={0xDEADBEEF} neg={-0xDEADBEEF} "
        f"name={text_value(ODD_NAME)} copy={text_value(ODD_NAME)}",
    ]


def test_walk_json_records_escape_any_bytes(ids_binary, agent, key):
    r = run_ids(ids_binary, "walk", agent, key[1], "--json")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["kind"] for rec in records] == ["node"] * 3
    assert [rec["addr"] for rec in records] == [hex(NODE_A), hex(NODE_B), hex(NODE_C)]
    assert [rec["value"] for rec in records] == [1, 0x1122334455667788, 0xDEADBEEF]
    assert records[2]["neg"] == -0xDEADBEEF
    # quote, backslash and control bytes escaped; the invalid byte 0xff as
    # U+00FF; the valid UTF-8 sequence c3 a9 kept as U+00E9
    assert records[2]["name"] == 'a"b\\c\n\x01\xffé'
    assert records[2]["copy"] == records[2]["name"]
    assert "\\u00ff" in r.stdout and "é" in r.stdout
    assert list(records[0]) == ["kind", "addr", "value", "neg", "name", "copy"]


STATS_WALKS = re.compile(r"llview: (\d+) walks \((\d+) nodes\), (\d+) object footprints, "
                         r"(\d+) footprint bytes, (\d+) reads served from footprints")
STATS_PAGES = re.compile(r"llview: (\d+) requests, \d+ bytes sent, (\d+) bytes received, "
                         r"(\d+) pages fetched")


def test_walk_footprint_fetches_the_list_in_one_request(ids_binary, agent, key):
    pages = run_ids(ids_binary, "walk", agent, key[1], "--stats", "--read-ahead", "1")
    walked = run_ids(ids_binary, "footprint_walk", agent, key[1], "--stats", "--read-ahead", "1")
    assert walked.returncode == 0, walked.stderr
    assert walked.stdout == pages.stdout           # the same records, from fewer bytes
    walks, nodes, _, footprint, served = map(int, STATS_WALKS.search(walked.stderr).groups())
    assert (walks, nodes) == (1, 3)
    assert footprint and served
    # the walk described the list as the program follows it: from test_list, stop at its head
    first, stop, link, ranges, derefs = agent.walk_requests[-1]
    assert (first, stop, link, ranges, derefs) == (LIST_SYM, LIST_SYM, 0, [(0, 32)], [])
    _, got_pages, fetched_pages = map(int, STATS_PAGES.search(pages.stderr).groups())
    _, got_walked, fetched_walked = map(int, STATS_PAGES.search(walked.stderr).groups())
    # node B sits 12 bytes before a page end, unaligned: its first unit must come by page
    assert fetched_walked < fetched_pages and got_walked < got_pages
    # --fetch pages turns the walk off
    off = run_ids(ids_binary, "footprint_walk", agent, key[1], "--stats", "--fetch", "pages")
    assert off.stdout == pages.stdout
    assert STATS_WALKS.search(off.stderr).group(1) == "0"


def test_walked_nodes_in_pages_that_share_a_cache_slot_are_all_kept(ids_binary, key):
    # Pages 8192 apart (32 MiB) share a slot of the direct-mapped page cache; the parts a
    # walk brought are kept apart from it, so neither node's bytes push the other's out.
    _, symbols, _ = make_guest()
    mem = Memory()
    head, first, second = LIST_SYM, 0xFFFF888001000040, 0xFFFF888001000040 + (8192 << 12)
    mem.write(head, struct.pack("<QQ", first, CYCLE_X))
    mem.write(first, node(second, 1, b"one"))
    mem.write(second, node(0, 2, b"two"))
    pages = {num: bytes(data) for num, data in mem.pages.items()}
    with FakeAgent(key=key[0], pages=pages, symbols=symbols) as fake:
        r = run_ids(ids_binary, "footprint_walk", fake, key[1], "--stats")
    assert r.returncode == 0, r.stderr
    assert [ln.split()[1] for ln in r.stdout.splitlines()] == ["value=1", "value=2"]
    _, _, fetched = map(int, STATS_PAGES.search(r.stderr).groups())
    assert fetched == 0 and len(fake.read_requests) == 0    # all from the one walk


def test_object_footprint_replaces_the_page_block(ids_binary, agent, key):
    one = ("--stats", "--read-ahead", "1")
    pages = run_ids(ids_binary, "footprint_object", agent, key[1], *one, "--fetch", "pages")
    fields = run_ids(ids_binary, "footprint_object", agent, key[1], *one, "--fetch", "objects")
    walks = run_ids(ids_binary, "footprint_object", agent, key[1], *one)   # the default
    assert fields.returncode == 0, fields.stderr
    assert fields.stdout == pages.stdout == walks.stdout == "value 1\nname first\n"
    assert STATS_WALKS.search(walks.stderr).group(3) == "0"     # objects are opt-in
    _, objects, footprint, served = map(int, STATS_WALKS.search(fields.stderr).groups()[1:])
    assert (objects, footprint) == (1, 24) and served >= 1   # value and name, 24 bytes
    _, got_pages, fetched_pages = map(int, STATS_PAGES.search(pages.stderr).groups())
    _, got_fields, fetched_fields = map(int, STATS_PAGES.search(fields.stderr).groups())
    assert fetched_fields == fetched_pages - 1        # node A's page came as 24 bytes
    assert got_fields < got_pages - 4000          # a page less, some record headers more


def test_walk_of_a_cycle_is_bounded(ids_binary, agent, key):
    r = run_ids(ids_binary, "footprint_cycle", agent, key[1], "--stats", "--max-reads", "1000")
    assert r.returncode == 2 and "read limit of 1000 reads reached" in r.stderr
    # the agent stops each walk at its node limit; the runtime asks a bounded number of times
    assert 1 <= len(agent.walk_requests) <= 5


def test_hits_cost_no_requests_and_read_ahead(ids_binary, agent, key):
    r = run_ids(ids_binary, "cache", agent, key[1], "--stats", "--read-ahead", "1")
    assert r.returncode == 0, r.stderr
    _, _, mem = make_guest()
    expected = sum(BANNER[i % 40] for i in range(1000)) + ord("a") + mem.read(PAGE_END + 64, 1)[0]
    assert r.stdout == f"sum {expected}\n"
    # 1000 reads of the banner page: one fetch; the read 6 bytes before a page
    # end brought the next page in the same request.
    assert agent.read_requests == [[BANNER_ADDR & ~4095], [PAGE_END & ~4095, (PAGE_END | 4095) + 1]]
    assert f"{agent.requests} requests" in r.stderr
    # misses: the banner page, the page end; the next page was read ahead
    assert "1002 reads: 1000 hits, 2 misses" in r.stderr


def test_nofault_reads_keep_what_was_served_and_remember_refusals(ids_binary, agent, key):
    """copy_from_kernel_nofault over [unmapped, mapped] gives -EFAULT, but the page the agent
    served after the refused one stays cached; a refused page is not asked for again in the
    same scan, and is in the next."""
    r = run_ids(ids_binary, "nofault", agent, key[1], "--read-ahead", "1")
    assert (r.returncode, r.stdout) == (0, "-14 0 -14 -14 -14\n"), r.stderr
    base = BANNER_ADDR & ~4095
    assert agent.read_requests == [[base - PAGE, base], [base + PAGE, base + 2 * PAGE],
                                   [base - PAGE]]


def test_block_read_ahead(ids_binary, agent, key):
    """By default a miss fetches the aligned 8-page block around it in one
    request; pages the guest does not map there are skipped silently."""
    r = run_ids(ids_binary, "cache", agent, key[1], "--stats")
    assert r.returncode == 0, r.stderr
    banner_block = (BANNER_ADDR >> 12) & ~7
    end_block = (PAGE_END >> 12) & ~7
    assert agent.read_requests == [
        [(banner_block + i) << 12 for i in range(8)],
        [(end_block + i) << 12 for i in range(8)],
    ]
    served = sum(1 for req in agent.read_requests for a in req if a >> 12 in agent.pages)
    assert f"{served} pages fetched" in r.stderr
    r = run_ids(ids_binary, "cache", agent, key[1], "--read-ahead", "3")
    assert r.returncode == 2 and "--read-ahead: '3' is not a power of two" in r.stderr


def test_straddling_reads(ids_binary, agent, key):
    r = run_ids(ids_binary, "straddle", agent, key[1])
    assert r.returncode == 0, r.stderr
    _, _, mem = make_guest()
    value = struct.unpack("<Q", mem.read(PAGE_END, 8))[0]
    big = sum(mem.read(PAGE_END - 3000, 6000))
    assert r.stdout == f"straddle {value:016x} big {big}\n"


def test_scan_sees_no_older_data_than_its_start(ids_binary, agent, key):
    r = run_ids(ids_binary, "fresh", agent, key[1])
    assert r.returncode == 0, r.stderr
    # the counter page changes on every fetch: one scan reads it once, the
    # next scan (llview_scan_begin) fetches it again
    assert r.stdout == "counter 1 1 2\n"


def test_native_pointers_take_identity_slots(ids_binary, agent, key):
    r = run_ids(ids_binary, "native", agent, key[1], "--stats")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"native {sum(i * 3 for i in range(2048))} 11 native text\n"
    assert agent.read_requests == []  # nothing went to the agent
    native_pages = int(r.stderr.split(" native pages")[0].rsplit("(", 1)[1])
    assert 4 <= native_pages <= 6  # the 16 KiB table spans 4-5 pages


def test_string_functions_read_guest_memory(ids_binary, agent, key):
    r = run_ids(ids_binary, "strings", agent, key[1])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"strlen {len(BANNER)}",
        "strnlen 5",
        "strcmp 1 1 1",
        "strncmp 0 1",
        "memcmp 0 1",
        "strscpy -7 [Linux v]",
        "strscpy 5 [first]",
        "page_end 10 [abcdefghij]",
    ]


# ---- errors ----


def test_unmapped_read_names_address_and_site(ids_binary, agent, key):
    r = run_ids(ids_binary, "unmapped", agent, key[1])
    assert r.returncode == 2
    assert r.stdout == "before\n"  # output so far is flushed first
    assert r.stderr == (
        "error: cannot read guest address 0xffffffff90000008 (unmapped) at ids.c:42:7\n"
    )


def test_null_dereference(ids_binary, agent, key):
    r = run_ids(ids_binary, "null", agent, key[1])
    assert r.returncode == 2
    assert r.stderr == "error: NULL pointer dereference reading 0x18 at ids.c:50:9\n"


def test_wild_native_pointer_is_an_error_not_a_crash(ids_binary, agent, key):
    r = run_ids(ids_binary, "wild", agent, key[1])
    assert r.returncode == 2
    assert "cannot read address 0x100000001230 at ids.c:10:3" in r.stderr


def test_uninstrumented_guest_read_is_reported(ids_binary, agent, key):
    r = run_ids(ids_binary, "uninstrumented", agent, key[1])
    assert r.returncode == 2
    assert r.stderr == (
        f"error: segmentation fault at address 0x{BANNER_ADDR:016x} in the IDS "
        "(a read llview did not instrument, or a bad IDS pointer)\n"
    )


def test_kernel_warn_trap_is_reported(ids_binary, agent, key):
    r = run_ids(ids_binary, "warn", agent, key[1])
    assert r.returncode == 2
    assert r.stdout == "before\n"
    lines = r.stderr.splitlines()
    assert lines[0] == "warning: bad state 5"
    assert lines[1].startswith("error: kernel BUG()/WARN() trap (ud2) at address 0x")
    assert lines[1].endswith(" in the IDS (a kernel header's sanity check failed)")


def test_cyclic_list_hits_the_read_limit(ids_binary, agent, key):
    start = time.monotonic()
    r = run_ids(ids_binary, "cycle", agent, key[1], "--max-reads", "1000")
    assert r.returncode == 2
    assert r.stderr == (
        "error: read limit of 1000 reads reached at ids.c:60:11 (corrupted or cyclic list?); "
        "raise with --max-reads\n"
    )
    assert time.monotonic() - start < 5
    # the default limit also ends it, just later
    r = run_ids(ids_binary, "cycle", agent, key[1])
    assert r.returncode == 2 and "read limit of 10000000 reads" in r.stderr


def test_store_to_guest_refused(ids_binary, agent, key):
    for scenario in ("store", "memset"):
        r = run_ids(ids_binary, scenario, agent, key[1])
        assert r.returncode == 2
        assert r.stderr.startswith("error: store to guest memory refused at ids.c:70:13 ")
    r = run_ids(ids_binary, "store_local", agent, key[1])
    assert (r.returncode, r.stdout) == (0, "xxx\n")


def test_unknown_kernel_symbol(ids_binary, key):
    pages, symbols, _ = make_guest()
    del symbols["test_counter"]
    with FakeAgent(key=key[0], pages=pages, symbols=symbols) as fake:
        r = run_ids(ids_binary, "walk", fake, key[1])
    assert r.returncode == 2
    assert r.stderr == "error: kernel symbol 'test_counter' not found in the running guest\n"


def test_kernel_release_mismatch(ids_binary, key):
    pages, symbols, _ = make_guest()
    with FakeAgent(key=key[0], pages=pages, symbols=symbols, release=b"6.1.0-other") as fake:
        r = run_ids(ids_binary, "walk", fake, key[1])
    assert r.returncode == 2
    assert r.stderr.startswith(
        "error: this IDS was built for kernel 6.1.0-test but the guest runs 6.1.0-other;"
    )
    assert r.stdout == ""


def test_wrong_key(ids_binary, agent, tmp_path):
    other = tmp_path / "other.bin"
    fd = os.open(other, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, os.urandom(32))
    os.close(fd)
    r = run_ids(ids_binary, "walk", agent, other)
    assert r.returncode == 2
    assert "authentication" in r.stderr and "key" in r.stderr
    assert r.stdout == ""


def test_dead_agent_times_out(ids_binary, key):
    with FakeAgent(key=key[0], mode="silent") as fake:
        start = time.monotonic()
        r = run_ids(ids_binary, "walk", fake, key[1], "--timeout", "1")
        elapsed = time.monotonic() - start
    assert r.returncode == 2
    assert r.stderr == f"error: agent at {fake.url} did not answer within 1 s\n"
    assert 0.9 < elapsed < 5


def test_agent_gone_mid_scan(ids_binary, key):
    pages, symbols, _ = make_guest()
    with FakeAgent(key=key[0], pages=pages, symbols=symbols, mode="drop_reads") as fake:
        r = run_ids(ids_binary, "walk", fake, key[1])
    assert r.returncode == 2
    assert r.stderr == (
        f"error: agent at {fake.url} closed the connection (wrong key, or the agent stopped)\n"
    )


def test_no_agent_listening(ids_binary, key):
    with FakeAgent(key=key[0]) as fake:
        url = fake.url
    r = run_ids(ids_binary, "walk", None, key[1], url=url)
    assert r.returncode == 2
    assert r.stderr == f"error: agent at {url}: cannot connect: Connection refused\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--agent URL is required"),
        (["--agent", "tcp://127.0.0.1:1"], "--key FILE is required"),
        (["--agent", "udp://x:1", "--key", "k"], "--agent 'udp://x:1': unsupported URL"),
        (["--agent", "tcp://127.0.0.1", "--key", "KEY"], "expected tcp://HOST:PORT"),
        (["--agent", "tcp://127.0.0.1:99999", "--key", "KEY"], "bad port '99999'"),
        (["--bogus"], "unknown option '--bogus'"),
        (["--max-reads", "lots"], "--max-reads: 'lots' is not a number"),
        (["--timeout", "0"], "--timeout: '0' is not a number from 1 to 3600"),
        (["--agent"], "--agent needs a value"),
        (["--json=yes"], "--json takes no value"),
    ],
)
def test_bad_options(ids_binary, key, args, message):
    args = [str(key[1]) if a == "KEY" else a for a in args]
    r = subprocess.run([str(ids_binary), *args], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and message in r.stderr, r.stderr
    assert r.stdout == ""


def test_key_file_checks(ids_binary, agent, key, tmp_path):
    loose = tmp_path / "loose.bin"
    loose.write_bytes(os.urandom(32))
    loose.chmod(0o644)
    r = run_ids(ids_binary, "walk", agent, loose)
    assert r.returncode == 2 and "readable by others" in r.stderr
    short = tmp_path / "short.bin"
    fd = os.open(short, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"x" * 16)
    os.close(fd)
    r = run_ids(ids_binary, "walk", agent, short)
    assert r.returncode == 2 and "exactly 32 bytes" in r.stderr
    r = run_ids(ids_binary, "walk", agent, tmp_path / "missing.bin")
    assert r.returncode == 2 and "cannot open key file" in r.stderr


def test_help(ids_binary):
    r = subprocess.run([str(ids_binary), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    assert "--agent URL" in r.stdout and "--max-reads N" in r.stdout


# ---- output ----

PRINTK_EXPECTED = [
    f"hello -5 7 4000000000 ff deadbeefcafe {2**64 - 1} 1234567890 -1234567890123 42 Z str %",
    "[   42] [42   ] [00042] [+42] [0xff] [010] [     abc] [ab      ] [xy] [ABC]",
    "44 4464 -1    07",
    "banner: " + BANNER.decode().rstrip("\n"),
    "short: [Linux] [     Linux]",
    "null: (null) bad: (efault) wild: (efault)",
    "ptr: ffff888012345678 ffff888012345678 ffff888012345678 ffffffff81000000",
    "sym: linux_banner+0x4/0xf00 linux_banner",
    "net: 192.168.1.2 52:54:00:ab:cd:ef ef:cd:ab:00:54:52 52 54 00 52:54 525400ab",
    "ab",
    "c",
    "d",
    f"snprintf: {len(BANNER) + len('|12345')} [{BANNER[:15].decode()}]",
]


def test_printk_formats(ids_binary, agent, key):
    r = run_ids(ids_binary, "printk", agent, key[1])
    assert r.returncode == 0, r.stderr
    assert "\x01" not in r.stdout  # the KERN_ level prefixes are stripped
    assert r.stdout.splitlines() == PRINTK_EXPECTED


def test_printk_json_lines(ids_binary, agent, key):
    r = run_ids(ids_binary, "printk", agent, key[1], "--json")
    assert r.returncode == 0, r.stderr
    logs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [entry["log"] for entry in logs] == PRINTK_EXPECTED


def test_alert_sets_exit_status(ids_binary, agent, key):
    banner = BANNER.decode()  # ends in a newline: guest text must not split an alert line
    r = run_ids(ids_binary, "alert", agent, key[1])
    assert r.returncode == 1
    assert r.stdout == f"ALERT: suspicious task {banner[:-1]}\\n pid 1234\n"
    r = run_ids(ids_binary, "alert", agent, key[1], "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"alert": f"suspicious task {banner} pid 1234"}


def test_structured_alert_fields(ids_binary, agent, key):
    banner = BANNER.decode()
    r = run_ids(ids_binary, "structured_alert", agent, key[1], "--json")
    assert r.returncode == 1, r.stderr
    first, unfinished, after = (json.loads(line) for line in r.stdout.splitlines())
    assert first == {"kind": "alert", "program": ids_binary.name,
                     "technique": "syscall_table_hook", "number": 62, "banner": banner,
                     "alert": "entry 62 points to unknown memory"}
    assert unfinished == {"kind": "alert", "program": ids_binary.name,
                          "technique": "unfinished", "n": 1, "alert": "unfinished alert"}
    assert after == {"kind": "after", "m": 2}
    r = run_ids(ids_binary, "structured_alert", agent, key[1])
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ALERT: entry 62 points to unknown memory [technique="
                               "syscall_table_hook number=62 banner=\"Linux version")
    assert lines[0].endswith('\\n"]') and len(lines) == 3, "guest text stays on one line"


def test_ids_return_value_is_exit_status(ids_binary, agent, key):
    r = run_ids(ids_binary, "status3", agent, key[1])
    assert (r.returncode, r.stdout, r.stderr) == (3, "", "")
    r = run_ids(ids_binary, "exit", agent, key[1], "--json")
    assert (r.returncode, r.stdout, r.stderr) == (4, '{"kind":"last","n":7}\n', "")


# ---- the fast path IR the compiler links in ----


def test_fastpath_ir_inlines_into_kernel_flag_code(tmp_path):
    """fastpath.ll compiles with llvmlite's LLVM without warnings, links into
    a module built with the kernel's -mno-sse style flags and inlines at the
    load site (no call left on the hit path)."""
    subprocess.run(["make", "-s", "-C", str(RUNTIME)], check=True)
    src = tmp_path / "user.c"
    src.write_text(
        "void *__llview_load(const void *, unsigned long, unsigned);\n"
        "long get(const long *p) { return *(const long *)__llview_load(p, 8, 0); }\n"
    )
    ll = tmp_path / "user.ll"
    subprocess.run(
        ["clang-19", "-O2", "-S", "-emit-llvm", "-mno-sse", "-mno-mmx", "-mno-sse2",
         "-mno-avx", "-mno-80387", "-o", str(ll), str(src)],
        check=True,
    )
    script = f"""
import llvmlite.binding as llvm
llvm.initialize_native_target(); llvm.initialize_native_asmprinter()
fastpath = open({str(RUNTIME / "build/fastpath.ll")!r}).read()
tm = llvm.Target.from_default_triple().create_target_machine(reloc="pic", opt=2)
tm.emit_object(llvm.parse_assembly(fastpath))
import sys; print("EMITTED", flush=True); print("EMITTED", file=sys.stderr, flush=True)
mod = llvm.parse_assembly(open({str(ll)!r}).read())
mod.link_in(llvm.parse_assembly(fastpath))
mod.verify()
pto = llvm.create_pipeline_tuning_options(speed_level=2)
pb = llvm.create_pass_builder(tm, pto)
pb.getModulePassManager().run(mod, pb)
get = str(mod.get_function("get"))
print("CALL_LOAD" if "call ptr @__llview_load(" in get else "INLINED")
print("MISS" if "@__llview_load_miss" in get else "NOMISS")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["EMITTED", "INLINED", "MISS"]
    # fastpath.ll alone emits no warnings (clang-19's user.ll may: not ours)
    assert "EMITTED" in r.stderr and r.stderr.split("EMITTED")[0] == ""


def test_archive_exports_only_the_api():
    subprocess.run(["make", "-s", "-C", str(RUNTIME)], check=True)
    r = subprocess.run(
        ["llvm-nm-19", "--defined-only", "--extern-only", "-j",
         str(RUNTIME / "build/libllview_rt.a")],
        capture_output=True, text=True, check=True,
    )
    names = {n for n in r.stdout.split() if n and not n.endswith(":")}
    for required in ("main", "__llview_cache", "__llview_read_budget", "__llview_load_miss",
                     "__llview_store_refused", "__llview_memcpy", "__llview_strlen", "_printk",
                     "__rcu_read_lock", "_raw_spin_lock_irqsave", "strscpy", "llview_alert",
                     "llview_field_str", "llview_scan_begin"):
        assert required in names
    # internals (rt_*, the wire code) stay private; no libc names are defined
    assert not [n for n in names if n.startswith(("rt_", "llv_"))]
    assert not names & {"strlen", "strcmp", "memcpy", "memset", "printf", "snprintf"}
