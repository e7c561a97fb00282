"""Tests of the long-lived IDS (runtime/src/loop.c, changes.c): --interval/--count scans with
fresh data, per-scan records, --changes (new/gone/changed records, alerts once), errors that
end one scan only, a lost agent reconnected, and SIGTERM. The hand-made IDS of
tests/runtime/test_ids.c runs against the test-double agent of tests/runtime/fake_agent.py."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest
import test_runtime
from helpers.running_ids import RunningIds
from test_runtime import LIST_SYM, NODE_A, NODE_B, NODE_C, FakeAgent, Memory, make_guest, run_ids

# test_runtime's fixtures: the hand-made IDS, a key, the fake agent on make_guest()'s memory
ids_binary = test_runtime.ids_binary
key = test_runtime.key
agent = test_runtime.agent


def Lines(binary: Path, scenario: str, url: str, key_path: Path, *extra: str) -> RunningIds:
    """tests/runtime/test_ids.c running `scenario` against the agent at url."""
    return RunningIds([str(binary), "--agent", url, "--key", str(key_path), *extra],
                      env=dict(os.environ, LLVIEW_TEST_SCENARIO=scenario))


def is_scan(record: dict) -> bool:
    return record.get("kind") == "scan"


def test_interval_count_scans_fresh_data(ids_binary, key):
    pages, symbols, _ = make_guest()
    with FakeAgent(key=key[0], pages=pages, symbols=symbols) as fake:
        start = time.monotonic()
        r = run_ids(ids_binary, "fresh", fake, key[1], "--interval", "0.2", "--count", "3",
                    "--json")
        elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    records = [json.loads(line) for line in r.stdout.splitlines()]
    # each run of main is a new scan: the counter page is fetched again (the scenario
    # itself starts a second scan within each run)
    logs = [rec["log"] for rec in records if "log" in rec]
    assert logs == ["counter 1 1 2", "counter 3 3 4", "counter 5 5 6"]
    scans = [rec for rec in records if is_scan(rec)]
    assert [s["scan"] for s in scans] == [1, 2, 3]
    assert [list(s) for s in scans] == [["kind", "scan", "time", "ms", "requests", "bytes"]] * 3
    # the scan record follows its scan's output
    assert [is_scan(rec) for rec in records] == [False, True] * 3
    for s in scans:
        assert s["requests"] == 2 and s["bytes"] > 2 * 4096  # this scan's share only
        assert 0 <= s["ms"] < 5000
        assert abs(s["time"] - time.time()) < 60
    assert 0.15 < scans[1]["time"] - scans[0]["time"] < 1.5  # the interval is kept
    assert 0.35 < elapsed < 10
    # text mode: nothing but the IDS's output; --stats adds a line per scan on stderr
    with FakeAgent(key=key[0], pages=pages, symbols=symbols) as fake:
        r = run_ids(ids_binary, "fresh", fake, key[1], "--interval", "0.05", "--count", "2")
        assert (r.returncode, r.stdout, r.stderr) == (0, "counter 7 7 8\ncounter 9 9 10\n", "")
        r = run_ids(ids_binary, "fresh", fake, key[1], "--interval", "0.05", "--count", "2",
                    "--stats")
    assert r.returncode == 0 and r.stdout == "counter 11 11 12\ncounter 13 13 14\n"
    lines = r.stderr.splitlines()
    assert lines[0].startswith("llview: scan 1: ") and "2 requests" in lines[0]
    assert lines[1].startswith("llview: scan 2: ")
    assert lines[2].startswith("llview: 2 scans (0 failed), ")


def versioned_guest() -> tuple[dict, dict[str, int], dict]:
    """A guest whose list changes between scans: the head page's fetch starts version n
    (each scan fetches it once). v1: A B C; v2: A C, C's value changed; v3 on: A B C."""
    pages, symbols, mem = make_guest()
    images = []
    for version in (1, 2, 3):
        m = Memory()
        m.pages = {num: bytearray(data) for num, data in mem.pages.items()}
        if version == 2:
            m.write(NODE_A, struct.pack("<Q", NODE_C))
            m.write(NODE_C + 8, struct.pack("<Q", 77))
        images.append({num: bytes(data) for num, data in m.pages.items()})
    state = {"version": 0}

    def page_of(num: int):
        def serve() -> bytes:
            if num == LIST_SYM >> 12:
                state["version"] += 1
            return images[min(state["version"], 3) - 1][num]
        return serve

    for num in mem.pages:
        pages[num] = page_of(num)
    return pages, symbols, state


def test_changes_new_gone_changed(ids_binary, key):
    pages, symbols, _ = versioned_guest()
    with FakeAgent(key=key[0], pages=pages, symbols=symbols) as fake:
        r = run_ids(ids_binary, "walk", fake, key[1], "--interval", "0.05", "--count", "4",
                    "--changes", "--json", "--read-ahead", "1")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    scans, batches, batch = [], [], []
    for rec in records:
        if is_scan(rec):
            scans.append(rec)
            batches.append(batch)
            batch = []
        else:
            batch.append(rec)
    assert len(scans) == 4
    # scan 1: everything as new ("change" right after the kind)
    assert [(b["change"], b["addr"]) for b in batches[0]] == [
        ("new", hex(NODE_A)), ("new", hex(NODE_B)), ("new", hex(NODE_C))]
    assert list(batches[0][0])[:2] == ["kind", "change"]
    assert batches[0][0]["value"] == 1 and batches[0][0]["name"] == "first"
    # scan 2: C changed (its new record), B gone (its last seen record); A unchanged
    assert [(b["change"], b["addr"]) for b in batches[1]] == [
        ("changed", hex(NODE_C)), ("gone", hex(NODE_B))]
    assert batches[1][0]["value"] == 77
    assert batches[1][1]["value"] == 0x1122334455667788 and batches[1][1]["name"] == "second"
    # scan 3: B back, C's value back; scan 4: nothing changed
    assert [(b["change"], b["addr"]) for b in batches[2]] == [
        ("new", hex(NODE_B)), ("changed", hex(NODE_C))]
    assert batches[2][1]["value"] == 0xDEADBEEF
    assert batches[3] == []
    assert [(s["new"], s["gone"], s["changed"]) for s in scans] == [
        (3, 0, 0), (0, 1, 1), (1, 0, 1), (0, 0, 0)]


def test_changes_text_markers(ids_binary, key):
    pages, symbols, _ = versioned_guest()
    with FakeAgent(key=key[0], pages=pages, symbols=symbols) as fake:
        r = run_ids(ids_binary, "walk", fake, key[1], "--interval", "0.05", "--count", "2",
                    "--changes", "--read-ahead", "1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line[:2] for line in lines] == ["+ ", "+ ", "+ ", "~ ", "- "]
    assert lines[0] == f"+ addr=0x{NODE_A:x} value=1 neg=-1 name=first copy=first"
    assert lines[3].startswith(f"~ addr=0x{NODE_C:x} value=77 neg=-77 ")
    assert lines[4].startswith(f"- addr=0x{NODE_B:x} value={0x1122334455667788} ")


def test_changes_prints_an_alert_once(ids_binary, agent, key):
    r = run_ids(ids_binary, "alert", agent, key[1], "--interval", "0.05", "--count", "3",
                "--changes")
    assert r.returncode == 1, r.stderr  # alerts were seen
    assert len(r.stdout.splitlines()) == 1 and r.stdout.startswith("ALERT: suspicious task")
    # without --changes each scan prints it
    r = run_ids(ids_binary, "alert", agent, key[1], "--interval", "0.05", "--count", "3")
    assert r.returncode == 1 and len(r.stdout.splitlines()) == 3


def test_changes_identity_by_declared_key(ids_binary, agent, key):
    """Records are identified by kind and first field ("run" here, new each scan), or by
    the field llview_record_key names ("name"); two with one identity are told apart in
    order."""
    def changes(scenario: str) -> list[list[tuple[str, str, int]]]:
        r = run_ids(ids_binary, scenario, agent, key[1], "--interval", "0.05", "--count",
                    "2", "--changes", "--json")
        assert r.returncode == 0, r.stderr
        batches, batch = [], []
        for rec in map(json.loads, r.stdout.splitlines()):
            if is_scan(rec):
                batches.append(batch)
                batch = []
            else:
                batch.append((rec["change"], rec["name"], rec["run"]))
        return batches

    assert changes("keyed") == [
        [("new", "a", 1), ("new", "a", 1), ("new", "b", 1)],
        [("changed", "a", 2), ("changed", "a", 2), ("changed", "b", 2)],
    ]
    assert changes("unkeyed") == [
        [("new", "a", 1), ("new", "a", 1), ("new", "b", 1)],
        [("new", "a", 2), ("new", "a", 2), ("new", "b", 2),
         ("gone", "a", 1), ("gone", "a", 1), ("gone", "b", 1)],
    ]


def test_error_ends_one_scan_only(ids_binary, agent, key):
    r = run_ids(ids_binary, "unmapped", agent, key[1], "--interval", "0.05", "--count", "2",
                "--json")
    assert r.returncode == 2  # the last scan failed
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec.get("log") for rec in records] == ["before", None, "before", None]
    scans = [rec for rec in records if is_scan(rec)]
    message = "cannot read guest address 0xffffffff90000008 (unmapped) at ids.c:42:7"
    assert [s["error"] for s in scans] == [message, message]
    assert r.stderr.splitlines() == [f"error: scan 1: {message}", f"error: scan 2: {message}"]


def test_agent_restarted_is_reconnected(ids_binary, key):
    pages, symbols, _ = make_guest()
    fake = FakeAgent(key=key[0], pages=pages, symbols=symbols)
    port = fake.port
    ids = Lines(ids_binary, "walk", fake.url, key[1], "--interval", "0.2", "--json")
    try:
        first = ids.until(is_scan)
        assert [rec["addr"] for rec in first[:-1]] == [hex(NODE_A), hex(NODE_B), hex(NODE_C)]
        assert "error" not in first[-1]
        fake.close()  # the agent dies
        lost = ids.until(lambda rec: rec.get("kind") == "agent")[-1]
        assert lost["event"] == "lost"
        assert "closed the connection" in lost["error"] or "cannot connect" in lost["error"]
        time.sleep(1.0)  # a few reconnection attempts fail meanwhile
        assert ids.proc.poll() is None, ids.err
        fake = FakeAgent(key=key[0], pages=pages, symbols=symbols, port=port)
        back = ids.until(lambda rec: rec.get("kind") == "agent", timeout=15)
        assert back[-1]["event"] == "reconnected", back
        after = ids.until(is_scan)
        assert [rec["addr"] for rec in after[:-1]] == [hex(NODE_A), hex(NODE_B), hex(NODE_C)]
        assert "error" not in after[-1]
        assert fake.requests > 0  # the new agent served the scan
        assert ids.stop() == 0  # the last scan was fine
    finally:
        ids.kill()
        fake.close()
    # every line was JSON; the failed scan's record (if the failure hit a scan) says why
    failed = [json.loads(s) for s in ids.seen if '"kind":"scan"' in s and '"error"' in s]
    assert all("agent at" in s["error"] for s in failed)


def test_lost_agent_without_interval_still_exits(ids_binary, key):
    pages, symbols, _ = make_guest()
    with FakeAgent(key=key[0], pages=pages, symbols=symbols, mode="drop_reads") as fake:
        r = run_ids(ids_binary, "walk", fake, key[1])
    assert r.returncode == 2 and "closed the connection" in r.stderr


def test_lost_agent_text_mode_reports_on_stderr(ids_binary, key):
    pages, symbols, _ = make_guest()
    with FakeAgent(key=key[0], pages=pages, symbols=symbols, mode="drop_reads") as fake:
        ids = Lines(ids_binary, "walk", fake.url, key[1], "--interval", "0.1")
        try:
            deadline = time.monotonic() + 15
            while not any("reconnected" in line for line in ids.err):
                assert time.monotonic() < deadline, ids.err
                time.sleep(0.05)
        finally:
            status = ids.stop()
    assert status == 2  # stopped while its scans kept failing
    assert ids.err[0].startswith("error: scan 1: agent at ")
    assert ids.err[1] == (f"llview: agent lost: agent at {fake.url} closed the connection "
                          "(wrong key, or the agent stopped); reconnecting")
    assert f"llview: agent reconnected at {fake.url}" in ids.err


def test_sigterm_ends_cleanly(ids_binary, agent, key):
    ids = Lines(ids_binary, "walk", agent.url, key[1], "--interval", "30", "--json")
    try:
        ids.until(is_scan)
        start = time.monotonic()
        assert ids.stop() == 0  # during the 30 s wait: at once
        assert time.monotonic() - start < 3
    finally:
        ids.kill()
    assert ids.out.empty() and ids.err == []
    # SIGINT likewise, and with alerts seen the status is 1
    ids = Lines(ids_binary, "alert", agent.url, key[1], "--interval", "30", "--json")
    try:
        ids.until(is_scan)
        ids.proc.send_signal(signal.SIGINT)
        assert ids.proc.wait(timeout=5) == 1
    finally:
        ids.kill()


def test_sigterm_during_a_scan_ends_after_it(ids_binary, key):
    pages, symbols, _ = make_guest()
    # the walk makes 3 READ requests (read-ahead 1: head, A, B/C pages ...), each 0.3 s late
    with FakeAgent(key=key[0], pages=pages, symbols=symbols, delay=0.3) as fake:
        ids = Lines(ids_binary, "walk", fake.url, key[1], "--interval", "0.1", "--json",
                    "--read-ahead", "1")
        try:
            ids.until(is_scan)
            time.sleep(0.4)  # into the second scan
            ids.proc.send_signal(signal.SIGTERM)
            rest = ids.until(is_scan)  # the scan under way still finishes, complete
            assert [rec["addr"] for rec in rest[:-1]] == [hex(NODE_A), hex(NODE_B),
                                                          hex(NODE_C)]
            assert rest[-1]["scan"] == 2 and "error" not in rest[-1]
            assert ids.proc.wait(timeout=10) == 0
        finally:
            ids.kill()
    assert ids.out.empty() and ids.err == []


def test_ids_return_value_under_interval(ids_binary, agent, key):
    """A non-zero return from the IDS's main is reported per scan and ends nothing."""
    r = run_ids(ids_binary, "status3", agent, key[1], "--interval", "0.05", "--count", "2",
                "--json")
    assert r.returncode == 0, r.stderr
    scans = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(s["scan"], s["status"]) for s in scans] == [(1, 3), (2, 3)]


def test_first_connection_failure_still_exits(ids_binary, key):
    with FakeAgent(key=key[0]) as fake:
        url = fake.url
    r = run_ids(ids_binary, "walk", None, key[1], "--interval", "1", url=url)
    assert r.returncode == 2
    assert r.stderr == f"error: agent at {url}: cannot connect: Connection refused\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "--interval: '0' is not a number of seconds"),
        (["--interval", "soon"], "--interval: 'soon' is not a number of seconds"),
        (["--interval", "1", "--count", "0"], "--count: '0' is not a number from 1"),
        (["--count", "3"], "--count needs --interval"),
        (["--changes"], "--changes needs --interval"),
        (["--changes=yes"], "--changes takes no value"),
        (["--interval"], "--interval needs a value"),
    ],
)
def test_bad_loop_options(ids_binary, key, args, message):
    r = subprocess.run([str(ids_binary), "--agent", "tcp://127.0.0.1:1", "--key", str(key[1]),
                        *args], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and message in r.stderr, r.stderr
    assert r.stdout == ""


def test_help_lists_loop_options(ids_binary):
    r = subprocess.run([str(ids_binary), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    for text in ("--interval SEC", "--count N", "--changes", "llview_record_key"):
        assert text in r.stdout

