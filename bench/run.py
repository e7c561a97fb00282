"""llview's benchmarks, measured side by side in one run on a real guest.

    .venv/bin/python bench/run.py [--runs N] [--keep-guest NAME]

Boots a test guest (or uses a running one), starts the host-side agent, and prints:
  1. an instrumented load that hits the page cache vs a plain load (bench_cache_hit);
  2. one encrypted 4 KiB fetch over TCP vs a bare loopback round trip of the same size;
  3. `llview build pslist.c` wall time;
  4. the process list of the guest: wall time of the whole IDS process, requests and bytes,
     with read-ahead (default) and with one page per miss, against the paper's one request
     per task;
  5. shared memory (bench/shm_pingpong.c): the sealed and clear ping-pong floor, one page and
     multi-page requests through the host agent's region, and pslist over shm.
The machine is noisy: read the ratios, and the minimum next to the median.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llview.agent_cli import AgentProcess
from llview.keys import generate_key_file
from llview.paths import REPO
from llview.vm.qemu import VM

sys.path.insert(0, str(REPO / "tests"))
from helpers import agent_proc  # noqa: E402

STATS = re.compile(r"llview: (\d+) requests, (\d+) bytes sent, (\d+) bytes received, "
                   r"(\d+) pages fetched")


def section(title: str) -> None:
    print(f"\n== {title}")


def timed(cmd: list[str], runs: int) -> tuple[list[float], str]:
    """Wall times (s) of `runs` runs of cmd, and the stderr of the last."""
    times = []
    err = ""
    for _ in range(runs):
        began = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - began)
        if result.returncode != 0:
            raise SystemExit(f"bench: {' '.join(cmd)} failed: {result.stderr}")
        err = result.stderr
    return times, err


def summary_ms(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1e3:7.2f} ms, min {min(times) * 1e3:7.2f} ms"


def bench_cache_hit() -> None:
    section("1. instrumented load (cache hit) vs plain load")
    subprocess.run(["sh", str(REPO / "bench" / "bench_cache_hit.sh")], check=True)


def bench_fetch(port: int, key: Path) -> None:
    section("2. one encrypted 4 KiB fetch over TCP vs a bare loopback TCP round trip")
    subprocess.run([str(REPO / "agents" / "host" / "build" / "llview-fetch-bench"),
                    "--agent", f"127.0.0.1:{port}", "--key-file", str(key),
                    "--symbol", "init_task"], check=True)


def bench_pslist(pslist: Path, url: str, key: Path, runs: int, tasks: int) -> None:
    section(f"4. process list of the test guest ({tasks} tasks), whole IDS process")
    base = [str(pslist), "--agent", url, "--key", str(key), "--stats"]
    for label, extra in (("read-ahead 8 pages (default)", []),
                         ("one page per miss", ["--read-ahead", "1"])):
        times, err = timed(base + extra, runs)
        m = STATS.search(err)
        requests, sent, received = (int(m.group(i)) for i in (1, 2, 3))
        print(f"  {label:30s} {summary_ms(times)}; {requests} requests, "
              f"{(sent + received) / 1024:.0f} KiB moved")
    print(f"  paper's design: one 4 KiB request per task = {tasks} requests, "
          f"{tasks * 4} KiB (target: whole IDS under 20 ms for ~250 tasks)")


def bench_build(runs: int) -> Path:
    section("3. llview build ids_programs/pslist.c")
    out = Path(tempfile.mkdtemp()) / "pslist"
    cmd = [sys.executable, "-m", "llview.cli", "build", str(REPO / "ids_programs" / "pslist.c"),
           "-o", str(out)]
    times, _ = timed(cmd, runs)
    print(f"  wall: median {statistics.median(times):.2f} s, min {min(times):.2f} s "
          f"(target: under 2 s)")
    return out


def bench_shm(vm: VM, key: Path, pslist: Path, runs: int) -> None:
    section("5. shared memory: reference ping-pong vs the host agent's region, pslist over shm")
    region = f"/dev/shm/llview-bench-{os.getpid()}.shm"
    agent = AgentProcess(["--ram", vm.ram_path, "--ram-size", str(vm.ram_size), "--key-file",
                          str(key)], binary=agent_proc.AGENT, shm=region)
    try:
        subprocess.run([str(REPO / "agents" / "host" / "build" / "llview-shm-pingpong"),
                        "--shm", region, "--key-file", str(key), "--symbol", "init_task",
                        "--rounds", str(max(3, runs)), "--ids", str(pslist)], check=True)
    finally:
        agent.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--guest", help="use this running guest instead of booting one")
    args = parser.parse_args()

    agent_proc.build()
    subprocess.run(["make", "-s", "-C", str(REPO / "runtime")], check=True)
    workdir = Path(tempfile.mkdtemp(prefix="llview-bench-"))
    key = workdir / "key.bin"
    generate_key_file(key)

    own_guest = args.guest is None
    vm = VM.load(args.guest) if args.guest else VM.start(f"bench-{os.getpid()}", quiet=False)
    agent = agent_proc.Agent(["--ram", vm.ram_path, "--ram-size", str(vm.ram_size),
                              "--key-file", str(key)])
    try:
        print(f"guest {vm.name}: {agent.ready_line}")
        rc, out = vm.exec("ls -d /proc/[0-9]* | wc -l")
        tasks = int(out.strip()) if rc == 0 else 0
        bench_cache_hit()
        bench_fetch(agent.port, key)
        pslist = bench_build(max(3, args.runs // 3))
        bench_pslist(pslist, f"tcp://127.0.0.1:{agent.port}", key, args.runs, tasks)
        bench_shm(vm, key, pslist, args.runs)
    finally:
        agent.stop()
        if own_guest:
            vm.stop(quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
