"""pslist by page blocks and by footprint, on the four paths, side by side in one run.

    .venv/bin/python bench/footprint.py [--runs N] [--scans N] [--keep-guest NAME --key FILE]
                                        [--peer-drgn VMLINUX]

Boots a guest with the in-kernel agent and its ivshmem region (or uses a running one), starts
the host-side agent on its RAM with a region of its own, builds ids_programs/pslist.c, then on
each path (host agent over TCP and shared memory, in-kernel agent over TCP and shared memory):
  - the whole IDS process, --fetch pages (page blocks, as before) and --fetch walks (the
    default: the compiler's list walk, one WALK request), interleaved run by run: median and minimum
    wall time, requests (round trips) and bytes moved;
  - one long-lived process, --interval 0.001 --count N --json: per-scan ms, requests and bytes
    from its scan records (the first scan, which also connects, left out).
With --peer-drgn VMLINUX (the kernel's debug image; drgn must be importable), drgn lists the
same tasks from an ELF core dump of the same guest: its whole process, a warm listing in its
own session, and its peak memory.
The machine is noisy: read the minimums and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llview.agent_cli import AgentProcess
from llview.check import _parse_stats
from llview.keys import generate_key_file
from llview.paths import REPO
from llview.vm.qemu import VM

sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
from helpers import agent_proc  # noqa: E402
from run import PATHS as RUN_PATHS  # noqa: E402
from run import write_svg  # noqa: E402

PATHS = ("host-tcp", "host-shm", "kernel-tcp", "kernel-shm")
MODES = ("pages", "walks")
DRGN_LIST = """
import resource, sys, time
import drgn
from drgn.helpers.linux.pid import for_each_task
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
def listing():
    return [(t.pid.value_(), t.real_parent.tgid.value_(), t.comm.string_()) for t in
            for_each_task(prog)]
n = len(listing())
began = time.perf_counter()
for _ in range(5):
    listing()
print(n, (time.perf_counter() - began) / 5, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_once(binary: Path, url: str, key: Path, mode: str) -> tuple[float, dict[str, int]]:
    began = time.perf_counter()
    done = subprocess.run([str(binary), "--agent", url, "--key", str(key), "--stats",
                           "--fetch", mode], capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"bench: pslist --fetch {mode} on {url} exited {done.returncode}: "
                         f"{done.stderr.strip()}")
    return elapsed, _parse_stats(done.stderr)[0]


def per_scan(binary: Path, url: str, key: Path, mode: str, scans: int) -> list[dict]:
    done = subprocess.run([str(binary), "--agent", url, "--key", str(key), "--json",
                           "--fetch", mode, "--interval", "0.001", "--count", str(scans)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"bench: long-lived pslist on {url} exited {done.returncode}: "
                         f"{done.stderr.strip()}")
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [r for r in records if r.get("kind") == "scan"][1:]


def drgn_peer(vm: VM, vmlinux: Path, work: Path, key: Path, pslist: Path, runs: int) -> None:
    """drgn and llview (host agent serving the same dump) list the tasks of one ELF core."""
    try:
        import drgn  # noqa: F401
    except ImportError:
        print("\ndrgn: not importable here; skipped")
        return
    dump = work / "guest.core"
    vm.dump(dump)
    script = work / "drgn_list.py"
    script.write_text(DRGN_LIST)
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        done = subprocess.run([sys.executable, str(script), str(dump), str(vmlinux)],
                              capture_output=True, text=True, timeout=600)
        times.append(time.perf_counter() - began)
        if done.returncode != 0:
            print(f"\ndrgn: failed: {done.stderr.strip()[-300:]}")
            return
    tasks, warm, peak_kib = done.stdout.split()
    peak = int(peak_kib) / 1024
    served = AgentProcess(["--image", str(dump), "--key-file", str(key)],
                          binary=agent_proc.AGENT)
    try:
        url = f"tcp://127.0.0.1:{served.port}"
        whole = [run_once(pslist, url, key, "walks")[0] for _ in range(runs)]
        scan = statistics.median(r["ms"] for r in per_scan(pslist, url, key, "walks", 21))
        child = subprocess.Popen([str(pslist), "--agent", url, "--key", str(key)],
                                 stdout=subprocess.DEVNULL)
        llview_peak = os.wait4(child.pid, 0)[2].ru_maxrss / 1024
    finally:
        served.stop()
    print(f"\ndrgn and llview on one ELF core dump of the guest ({tasks} tasks):")
    print(f"  drgn   whole process median {statistics.median(times) * 1e3:8.1f} ms, min "
          f"{min(times) * 1e3:8.1f} ms; warm listing {float(warm) * 1e3:.2f} ms; peak RSS "
          f"{peak:.0f} MiB")
    print(f"  llview whole process median {statistics.median(whole) * 1e3:8.1f} ms, min "
          f"{min(whole) * 1e3:8.1f} ms; per scan {scan:.2f} ms (host agent on the dump, TCP); "
          f"peak RSS {llview_peak:.0f} MiB")
    print(f"  ratio: whole process {statistics.median(times) / statistics.median(whole):.0f}x, "
          f"warm listing vs per scan {float(warm) * 1e3 / scan:.1f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--scans", type=int, default=21)
    parser.add_argument("--keep-guest", metavar="NAME", help="use this running guest")
    parser.add_argument("--key", type=Path, help="its agent's key file (with --keep-guest)")
    parser.add_argument("--plot", type=Path, help="write the chart (SVG) here")
    parser.add_argument("--peer-drgn", metavar="VMLINUX", type=Path,
                        help="also time drgn on a dump of the guest, with this debug vmlinux")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="llview-bench-footprint-"))
    key = args.key or work / "key.bin"
    if not args.key:
        generate_key_file(key)
    vm = VM.load(args.keep_guest) if args.keep_guest else VM.start(
        f"bench-footprint-{os.getpid()}", agent="kernel", key=key.read_bytes(), shm=True,
        quiet=True, vmcoreinfo=args.peer_drgn is not None)
    agent_proc.build()
    region = f"/dev/shm/llview-bench-footprint-{os.getpid()}.shm"
    host = AgentProcess(["--ram", vm.ram_path, "--ram-size", str(vm.ram_size), "--key-file",
                         str(key)], binary=agent_proc.AGENT, shm=region)
    try:
        urls = {"host-tcp": f"tcp://127.0.0.1:{host.port}", "host-shm": f"shm:{region}",
                "kernel-tcp": vm.tcp_url, "kernel-shm": vm.shm_url}
        pslist = work / "pslist"
        subprocess.run([sys.executable, "-m", "llview.cli", "build",
                        str(REPO / "ids_programs" / "pslist.c"), "-o", str(pslist)], check=True)
        rc, out = vm.exec("ls -d /proc/[0-9]* | wc -l")
        print(f"guest {vm.name}: {out.strip() if rc == 0 else '?'} processes")

        whole: dict[tuple[str, str], tuple[list[float], dict[str, int]]] = {}
        for _ in range(args.runs):      # interleaved: noise falls on every cell alike
            for path, url in urls.items():
                for mode in MODES:
                    elapsed, stats = run_once(pslist, url, key, mode)
                    times = whole.get((path, mode), ([], stats))[0]
                    whole[(path, mode)] = (times + [elapsed], stats)
        scans = {(path, mode): per_scan(pslist, url, key, mode, args.scans)
                 for path, url in urls.items() for mode in MODES}

        print(f"\n{'path':11} {'fetch':9} | {'whole ms':>8} {'min':>7} {'reqs':>5} "
              f"{'KiB':>7} | {'scan ms':>8} {'min':>7} {'reqs':>5} {'KiB':>7}")
        for (path, mode), (times, stats) in whole.items():
            s = scans[(path, mode)]
            ms = [r["ms"] for r in s]
            print(f"{path:11} {mode:9} | {statistics.median(times) * 1e3:8.2f} "
                  f"{min(times) * 1e3:7.2f} {stats['requests']:5d} "
                  f"{(stats['bytes_sent'] + stats['bytes_received']) / 1024:7.1f} | "
                  f"{statistics.median(ms):8.3f} {min(ms):7.3f} "
                  f"{int(statistics.median(r['requests'] for r in s)):5d} "
                  f"{statistics.median(r['bytes'] for r in s) / 1024:7.1f}")
        print("\nwalks vs pages (medians):")
        for path in PATHS:
            (tp, sp), (tf, sf) = whole[(path, "pages")], whole[(path, "walks")]
            scan_p = statistics.median(r["ms"] for r in scans[(path, "pages")])
            scan_f = statistics.median(r["ms"] for r in scans[(path, "walks")])
            moved_p = sp["bytes_sent"] + sp["bytes_received"]
            moved_f = sf["bytes_sent"] + sf["bytes_received"]
            print(f"  {path:11} whole process {statistics.median(tp) / statistics.median(tf):5.1f}x"
                  f" faster, per scan {scan_p / scan_f:5.1f}x, requests {sp['requests']} -> "
                  f"{sf['requests']}, bytes {moved_p / moved_f:5.1f}x fewer")
        if args.plot:
            chart = {}
            for label, source in (("whole process", whole), ("per scan", scans)):
                for mode in MODES:
                    for path, name in zip(PATHS, RUN_PATHS, strict=True):
                        cell = source[(path, mode)]
                        ms = [r["ms"] / 1e3 for r in cell] if label == "per scan" else cell[0]
                        chart[(f"{label}, {mode}", name)] = statistics.median(ms) * 1e3
            write_svg(args.plot, chart, "pslist, ~250 tasks: by page blocks and by footprint, "
                      "median ms (log scale)")
            print(f"  plot written to {args.plot}")
        print("  targets: per scan at most 3 requests and 64 KiB; kernel agent at most 20 ms per "
              "scan; host shm at most 0.3 ms per scan and 3 ms for the whole process")
        if args.peer_drgn:
            drgn_peer(vm, args.peer_drgn, work, key, pslist, max(3, args.runs // 3))
    finally:
        host.stop()
        if not args.keep_guest:
            vm.stop(quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
