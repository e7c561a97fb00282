"""The detection suite against one guest, per program and path, measured side by side in one run.

    .venv/bin/python bench/detect.py [--runs N] [--keep-guest NAME]

Boots a guest with the in-kernel agent and its ivshmem region (or uses a running one started
with `llview vm start --agent kernel --key ...`, whose key file is given with --key), starts the
host-side agent on its RAM with a region of its own, builds the suite once (`llview check`'s
cache), then runs every program N times on each of the four paths and prints, per program:
median and minimum wall time of the whole IDS process, requests, bytes received; and the suite's
sum per path. Then the whole `llview check` command (builds cached) on each path.
The machine is noisy: read the minimums next to the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llview.agent_cli import AgentProcess
from llview.check import DETECTIONS, _parse_stats, build_suite
from llview.keys import generate_key_file
from llview.paths import REPO
from llview.vm.qemu import VM

sys.path.insert(0, str(REPO / "tests"))
from helpers import agent_proc  # noqa: E402

PATHS = ("host-tcp", "host-shm", "kernel-tcp", "kernel-shm")


def run_once(binary: Path, url: str, key: Path) -> tuple[float, dict[str, int]]:
    began = time.perf_counter()
    done = subprocess.run([str(binary), "--agent", url, "--key", str(key), "--stats"],
                          capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"bench: {binary.name} on {url} exited {done.returncode}: "
                         f"{done.stderr.strip()}{done.stdout.strip()}")
    return elapsed, _parse_stats(done.stderr)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep-guest", metavar="NAME", help="use this running guest")
    parser.add_argument("--key", type=Path, help="its agent's key file (with --keep-guest)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="llview-bench-detect-"))
    key = args.key or work / "key.bin"
    if not args.key:
        generate_key_file(key)
    vm = VM.load(args.keep_guest) if args.keep_guest else VM.start(
        f"bench-detect-{os.getpid()}", agent="kernel", key=key.read_bytes(), shm=True,
        quiet=True)
    agent_proc.build()
    region = f"/dev/shm/llview-bench-detect-{os.getpid()}.shm"
    host = AgentProcess(["--ram", vm.ram_path, "--ram-size", str(vm.ram_size), "--key-file",
                         str(key)], binary=agent_proc.AGENT, shm=region)
    try:
        urls = {"host-tcp": f"tcp://127.0.0.1:{host.port}", "host-shm": f"shm:{region}",
                "kernel-tcp": vm.tcp_url, "kernel-shm": vm.shm_url}
        began = time.perf_counter()
        built = build_suite(list(DETECTIONS), None)
        print(f"suite built (or taken from the cache) in {time.perf_counter() - began:.1f} s")
        failed = {n: b for n, b in built.items() if isinstance(b, str)}
        if failed:
            raise SystemExit(f"bench: build failed: {failed}")

        print(f"\n{'program':16} {'path':11} {'median ms':>10} {'min ms':>8} {'requests':>9} "
              f"{'KiB received':>13}")
        totals = {p: [0.0, 0.0, 0, 0] for p in PATHS}
        for name, binary in built.items():
            for path in PATHS:
                times, stats = [], {}
                for _ in range(args.runs):
                    elapsed, stats = run_once(Path(binary), urls[path], key)
                    times.append(elapsed)
                med, low = statistics.median(times) * 1e3, min(times) * 1e3
                totals[path][0] += med
                totals[path][1] += low
                totals[path][2] += stats.get("requests", 0)
                totals[path][3] += stats.get("bytes_received", 0)
                print(f"{name:16} {path:11} {med:10.1f} {low:8.1f} "
                      f"{stats.get('requests', 0):9} {stats.get('bytes_received', 0) / 1024:13.0f}")
        print("\nwhole suite (sum of the programs):")
        for path, (med, low, requests, received) in totals.items():
            print(f"  {path:11} median {med:8.1f} ms, min {low:8.1f} ms, {requests} requests, "
                  f"{received / 1024:.0f} KiB received")
        ratio = totals["kernel-shm"][1] / totals["host-shm"][1]
        print(f"  in-kernel agent vs host agent over shared memory (minimums): {ratio:.1f}x "
              "(the module's AES-GCM runs emulated under TCG)")

        print("\n`llview check` (whole command, builds cached):")
        for path in PATHS:
            times = []
            for _ in range(max(1, args.runs // 2)):
                t0 = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "llview.cli", "check", "--agent",
                                       urls[path], "--key", str(key)], capture_output=True,
                                      text=True, timeout=600)
                times.append(time.perf_counter() - t0)
                if done.returncode != 0:
                    raise SystemExit(f"bench: llview check on {path}: {done.stdout}{done.stderr}")
            print(f"  {path:11} median {statistics.median(times) * 1e3:8.1f} ms, "
                  f"min {min(times) * 1e3:8.1f} ms")
    finally:
        host.stop()
        Path(region).unlink(missing_ok=True)
        if not args.keep_guest:
            vm.stop(quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
