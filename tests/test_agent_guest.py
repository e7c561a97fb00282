"""The host agent on the real QEMU guest (session fixture `guest`, tests/conftest.py).

Everything the agent reports is compared with what the guest kernel itself says from inside:
uname -r, /proc/version, /proc/kallsyms (root sees real addresses), /proc/iomem, /proc/cpuinfo.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import agent_proc
from helpers.llview_wire import C, Client

from llview.paths import LlviewError

pytestmark = pytest.mark.guest

START_KERNEL_MAP = 0xFFFFFFFF80000000
PROBE_SYMBOLS = ["_stext", "_text", "linux_banner", "init_task", "init_uts_ns",
                 "sys_call_table", "jiffies_64", "page_offset_base", "modules"]


def guest_exec(guest, cmd: str) -> str:
    rc, out = guest.exec(cmd)
    assert rc == 0, f"{cmd!r} failed in the guest ({rc}): {out}"
    return out


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> tuple[str, bytes]:
    agent_proc.build()
    path = tmp_path_factory.mktemp("key") / "key.bin"
    return str(path), agent_proc.write_key(path)


@pytest.fixture(scope="module")
def agent(guest, key):
    a = agent_proc.Agent(["--ram", guest.ram_path, "--ram-size", str(guest.ram_size),
                          "--key-file", key[0]])
    yield a
    a.stop()


@pytest.fixture
def client(agent, key):
    c = Client(agent.port, key[1])
    yield c
    c.close()


@pytest.fixture(scope="module")
def guest_kallsyms(guest) -> dict[str, int]:
    pattern = "|".join(PROBE_SYMBOLS)
    out = guest_exec(guest, f"grep -E ' ({pattern})$' /proc/kallsyms")
    found: dict[str, int] = {}
    for line in out.splitlines():
        addr, _type, name = line.split()[:3]
        found.setdefault(name, int(addr, 16))
    assert set(found) == set(PROBE_SYMBOLS), out
    assert found["_stext"] != 0, "guest /proc/kallsyms hides addresses (kptr_restrict)"
    return found


def read_c_string(client: Client, va: int, limit: int = 4096) -> bytes:
    data = client.read_bytes(va, limit)
    assert b"\0" in data
    return data.split(b"\0")[0]


def test_info_release_is_the_guests_uname(client, guest):
    assert client.info()["release"] == guest_exec(guest, "uname -r").strip()


def test_paging_levels_match_the_guest_cpu(client, guest):
    flags = guest_exec(guest, "grep -m1 '^flags' /proc/cpuinfo").split()
    levels = client.info()["paging_levels"]
    assert levels == (5 if "la57" in flags else 4)
    assert levels == 5, "the guest runs with -cpu max, which has LA57"


def test_symbols_match_the_guests_kallsyms(client, guest_kallsyms):
    assert client.syms(PROBE_SYMBOLS) == [guest_kallsyms[n] for n in PROBE_SYMBOLS]
    assert client.syms(["no_such_symbol_llview"]) == [0]


def test_kaslr_slide(client, guest_kallsyms, kernel_profile, agent):
    config = kernel_profile.config_values()
    link_stext = START_KERNEL_MAP + int(config["CONFIG_PHYSICAL_START"], 0)
    slide = client.info()["kaslr_offset"]
    assert slide == guest_kallsyms["_stext"] - link_stext
    assert f"KASLR slide {slide:#x}" in agent.ready_line


def test_linux_banner_is_the_guests_proc_version(client, guest):
    (banner,) = client.syms(["linux_banner"])
    assert banner != 0
    assert read_c_string(client, banner).decode() == guest_exec(guest, "cat /proc/version")


def test_init_task_comm_is_swapper(client):
    layout = subprocess.run([sys.executable, "-m", "llview.cli", "layout", "task_struct.comm"],
                            capture_output=True, text=True, check=True).stdout
    offset = int(re.search(r"offset (\d+)", layout).group(1))
    (init_task,) = client.syms(["init_task"])
    assert read_c_string(client, init_task + offset, 16) == b"swapper/0"


def test_direct_map_reaches_the_kernel_image(client, guest, guest_kallsyms):
    """page_offset_base + physical address of the kernel code (from the guest's /proc/iomem)
    reads the same bytes as the kernel's own _text mapping: the direct map (large pages) and
    the kernel-image map agree."""
    iomem = guest_exec(guest, "grep 'Kernel code' /proc/iomem")
    kernel_code_phys = int(iomem.split("-")[0].strip(), 16)
    info = client.info()
    stored = client.read_bytes(guest_kallsyms["page_offset_base"], 8)
    assert int.from_bytes(stored, "little") == info["page_offset_base"]
    direct, image = client.read([info["page_offset_base"] + kernel_code_phys,
                                 guest_kallsyms["_text"]])
    assert direct[0] == image[0] == C["LLV_OK"]
    assert direct[1] == image[1]


def test_unmapped_noncanonical_and_user_addresses_on_the_guest(client):
    statuses = [s for s, _ in client.read([
        0xFF00000000000000,   # 5-level guard hole, never mapped
        0x0100000000000000,   # non-canonical under 5-level paging
        0x0080000000000000,   # canonical under 5-level: a user address
        0x0000000000401000,
    ])]
    assert statuses == [C["LLV_UNMAPPED"], C["LLV_NONCANONICAL"], C["LLV_USER_ADDRESS"],
                        C["LLV_USER_ADDRESS"]]


def test_system_map_cross_check(guest, key, guest_kallsyms, tmp_path, client):
    """--system-map compares link-time addresses plus the slide with kallsyms."""
    slide = client.info()["kaslr_offset"]
    image_symbols = {n: a for n, a in guest_kallsyms.items() if a >= START_KERNEL_MAP}
    good, bad = tmp_path / "System.map", tmp_path / "bad.map"
    good.write_text("".join(f"{a - slide:016x} T {n}\n" for n, a in image_symbols.items()))
    image_symbols["init_task"] += 64
    bad.write_text("".join(f"{a - slide:016x} T {n}\n" for n, a in image_symbols.items()))
    a = agent_proc.Agent(["--ram", guest.ram_path, "--key-file", key[0],
                          "--system-map", str(good)])
    err = a.stop()
    assert f"{len(image_symbols)} symbols compared, 0 mismatched" in err
    with pytest.raises(LlviewError, match="1 mismatched"):
        agent_proc.Agent(["--ram", guest.ram_path, "--key-file", key[0],
                          "--system-map", str(bad)])


def _offset(field: str) -> int:
    out = subprocess.run([sys.executable, "-m", "llview.cli", "layout", field],
                         capture_output=True, text=True, check=True).stdout
    return int(re.search(r"offset (\d+)", out).group(1))


def test_walk_of_init_task_tasks_matches_read_and_proc(client, guest, guest_kallsyms):
    """WALK on the real guest's task list, served from its RAM by the host agent: the same
    records as the IDS's own page-by-page reading, every process of /proc, and a walk too
    big for one reply continued from `next` gives the same tasks."""
    from helpers.walk_model import PageReader, model_walk

    tasks, pid, comm = (_offset(f"task_struct.{f}") for f in ("tasks", "pid", "comm"))
    head = guest_kallsyms["init_task"] + tasks
    ranges = [(pid - tasks, 4), (comm - tasks, 16)]
    listing = "for p in /proc/[0-9]*; do echo ${p#/proc/}; done"  # ls fails on a process that
    before = {int(p) for p in guest_exec(guest, listing).split() if p.isdigit()}  # just exited
    for _attempt in range(4):  # the guest runs on while the two readings are made
        result = client.walk(head, head, 0, C["LLV_MAX_WALK_NODES"], ranges)
        if result == model_walk(PageReader(client), head, head, 0, C["LLV_MAX_WALK_NODES"],
                                ranges):
            break
    else:
        pytest.fail("the walk never matched READ-based reading of the same list")
    after = {int(p) for p in guest_exec(guest, listing).split() if p.isdigit()}
    assert result.reason == C["LLV_WALK_STOP"]
    pids = [int.from_bytes(r.data, "little", signed=True) for r in result.records if r.len == 4]
    assert len(pids) == result.nodes > 50 and {1, 2} <= set(pids)
    assert before & after <= set(pids)
    big = ranges + [(-tasks, 4096)]
    for _attempt in range(4):
        parts, first = [], head
        while not parts or parts[-1].reason == C["LLV_WALK_FULL"]:
            parts.append(client.walk(first, head, 0, C["LLV_MAX_WALK_NODES"], big))
            first = parts[-1].next
        again = client.walk(head, head, 0, C["LLV_MAX_WALK_NODES"], ranges)
        split = [int.from_bytes(r.data, "little", signed=True) for p in parts
                 for r in p.records if r.len == 4]
        if split == [int.from_bytes(r.data, "little", signed=True) for r in again.records
                     if r.len == 4]:
            break
    assert len(parts) > 1 and parts[-1].reason == C["LLV_WALK_STOP"]
    assert split == [int.from_bytes(r.data, "little", signed=True) for r in again.records
                     if r.len == 4]
