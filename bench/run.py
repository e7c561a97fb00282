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
    subprocess.run([str(REPO / "bench" / "build" / "llview-fetch-bench"),
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
        subprocess.run([str(REPO / "bench" / "build" / "llview-shm-pingpong"),
                        "--shm", region, "--key-file", str(key), "--symbol", "init_task",
                        "--rounds", str(max(3, runs)), "--ids", str(pslist)], check=True)
    finally:
        agent.stop()


PATHS = ("host agent, TCP", "host agent, shm", "kernel agent, TCP", "kernel agent, shm")


def bench_paths(vm: VM, key: Path, binaries: dict[str, Path], runs: int,
                plot: Path | None) -> None:
    section("6. the paper's experiment: OS version and process list over the four paths")
    region = f"/dev/shm/llview-bench-paths-{os.getpid()}.shm"
    agent = AgentProcess(["--ram", vm.ram_path, "--ram-size", str(vm.ram_size), "--key-file",
                          str(key)], binary=agent_proc.AGENT, shm=region)
    urls = dict(zip(PATHS, (f"tcp://127.0.0.1:{agent.port}", f"shm:{region}",
                            f"tcp://127.0.0.1:{vm.host_port}", f"shm:{vm.shm_path}"),
                    strict=True))
    results: dict[tuple[str, str], tuple[list[float], int, int]] = {}
    try:
        # Interleaved: every round runs each program over each path once, so machine noise
        # falls on all of them alike.
        for _ in range(runs):
            for program, binary in binaries.items():
                for path, url in urls.items():
                    times, err = timed([str(binary), "--agent", url, "--key", str(key),
                                        "--stats"], 1)
                    m = STATS.search(err)
                    prior = results.get((program, path), ([], 0, 0))[0]
                    results[(program, path)] = (prior + times, int(m.group(1)),
                                                int(m.group(2)) + int(m.group(3)))
    finally:
        agent.stop()
    print(f"  {'program':11s} {'path':19s} {'median ms':>10s} {'min ms':>8s} "
          f"{'requests':>8s} {'KiB moved':>9s}")
    for (program, path), (times, requests, moved) in results.items():
        print(f"  {program:11s} {path:19s} {statistics.median(times) * 1e3:10.2f} "
              f"{min(times) * 1e3:8.2f} {requests:8d} {moved / 1024:9.0f}")
    for program in binaries:
        for who in ("host agent", "kernel agent"):
            tcp = statistics.median(results[(program, f"{who}, TCP")][0])
            shm = statistics.median(results[(program, f"{who}, shm")][0])
            print(f"  {program}: {who}: shm / TCP = {shm / tcp:.2f} "
                  f"({(tcp - shm) * 1e3:+.2f} ms saved by shm)")
    print("  (the paper: shm 25 % faster than TCP on the process list, 1 ms on the OS version;"
          " the kernel agent runs in a TCG guest here, which slows its crypto)")
    if plot:
        write_svg(plot, {k: statistics.median(v[0]) * 1e3 for k, v in results.items()})
        print(f"  plot written to {plot}")


def write_svg(out: Path, medians: dict[tuple[str, str], float],
              title: str = "Whole IDS process, median wall time (ms, log scale)") -> None:
    """A grouped bar chart (log scale, ms) of the four paths per group (a program, ...), in
    the groups' first-seen order, as plain SVG."""
    import math

    programs = list(dict.fromkeys(p for p, _ in medians))
    colours = dict(zip(PATHS, ("#4e79a7", "#a0cbe8", "#f28e2b", "#ffbe7d"), strict=True))
    width, height, left, bottom, top = 640, 320, 60, 40, 30
    lo, hi = 0.1, 10 ** math.ceil(math.log10(max(medians.values())))
    def y(ms: float) -> float:
        frac = (math.log10(max(ms, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        return height - bottom - frac * (height - bottom - top)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="16" font-size="13">{title}</text>']
    decade = lo
    while decade <= hi:
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y(decade):.1f}" '
                     f'y2="{y(decade):.1f}" stroke="#ddd"/><text x="{left - 6}" '
                     f'y="{y(decade) + 4:.1f}" text-anchor="end">{decade:g}</text>')
        decade *= 10
    group = (width - left - 10) / len(programs)
    bar = group / (len(PATHS) + 1)
    for g, program in enumerate(programs):
        x0 = left + g * group + bar / 2
        for i, path in enumerate(PATHS):
            ms = medians[(program, path)]
            x = x0 + i * bar
            parts.append(f'<rect x="{x:.1f}" y="{y(ms):.1f}" width="{bar - 2:.1f}" '
                         f'height="{height - bottom - y(ms):.1f}" fill="{colours[path]}"/>'
                         f'<text x="{x + bar / 2 - 1:.1f}" y="{y(ms) - 3:.1f}" '
                         f'text-anchor="middle" font-size="9">{ms:.1f}</text>')
        parts.append(f'<text x="{x0 + 2 * bar:.1f}" y="{height - bottom + 16}" '
                     f'text-anchor="middle">{program}</text>')
    for i, path in enumerate(PATHS):
        parts.append(f'<rect x="{left + 10 + i * 140}" y="{height - 14}" width="10" '
                     f'height="10" fill="{colours[path]}"/><text x="{left + 24 + i * 140}" '
                     f'y="{height - 5}">{path}</text>')
    parts.append("</svg>")
    out.write_text("\n".join(parts) + "\n")


def build_ids(name: str) -> Path:
    out = Path(tempfile.mkdtemp()) / name
    subprocess.run([sys.executable, "-m", "llview.cli", "build",
                    str(REPO / "ids_programs" / f"{name}.c"), "-o", str(out)], check=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--guest", help="use this running guest (started with --agent kernel "
                        "--key KEY) instead of booting one")
    parser.add_argument("--key", type=Path, help="the guest's agent key (with --guest)")
    parser.add_argument("--plot", type=Path, help="write the four-path chart (SVG) here")
    args = parser.parse_args()

    agent_proc.build()
    subprocess.run(["make", "-s", "-C", str(REPO / "runtime")], check=True)
    subprocess.run(["make", "-s", "-C", str(REPO / "bench")], check=True)
    workdir = Path(tempfile.mkdtemp(prefix="llview-bench-"))
    key = args.key or workdir / "key.bin"
    if not args.key:
        generate_key_file(key)

    own_guest = args.guest is None
    vm = VM.load(args.guest) if args.guest else VM.start(
        f"bench-{os.getpid()}", agent="kernel", key=key.read_bytes(), quiet=False)
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
        bench_paths(vm, key, {"os_version": build_ids("os_version"), "pslist": pslist},
                    max(3, args.runs // 2), args.plot)
    finally:
        agent.stop()
        if own_guest:
            vm.stop(quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
