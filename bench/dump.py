"""Serving a memory dump vs serving the live guest, side by side in one run.

    .venv/bin/python bench/dump.py [--runs N] [--keep-guest NAME] [--dir DIR]

Boots a guest with the vmcoreinfo device (or uses a running one), takes an ELF dump through
QMP (`VM.dump`, what `llview vm dump` does), makes a copy whose VMCOREINFO note is renamed so
the agent must scan the dump's RAM instead, and prints:
  1. the dump itself: size and time (the guest is paused meanwhile);
  2. agent start-up until its ready line, on the live RAM file (/dev/shm), on the dump with
     its note, and on the copy without it, warm and with the dump's pages evicted from the
     page cache first (posix_fadvise on that one file); and how much of its mapping the agent
     has touched by then (RssFile + RssShmem);
  3. the whole `pslist` and `os_version` IDS processes against each agent.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llview.agent_cli import AgentProcess
from llview.keys import generate_key_file
from llview.paths import REPO
from llview.vm.qemu import VM


def build_ids(name: str, out_dir: Path) -> Path:
    out = out_dir / name
    subprocess.run([sys.executable, "-m", "llview.cli", "build",
                    str(REPO / "ids_programs" / f"{name}.c"), "-o", str(out)], check=True)
    return out


def hide_vmcoreinfo_note(path: Path) -> bool:
    """Renames the core's VMCOREINFO note in place (so the agent ignores it); False if none."""
    with open(path, "r+b") as f:
        header = f.read(64)
        phoff, = struct.unpack_from("<Q", header, 32)
        phnum, = struct.unpack_from("<H", header, 56)
        f.seek(phoff)
        phdrs = f.read(phnum * 56)
        for i in range(phnum):
            ptype, _, offset, _, _, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", phdrs, i * 56)
            if ptype != 4:  # PT_NOTE
                continue
            f.seek(offset)
            notes = f.read(filesz)
            pos = 0
            while pos + 12 <= len(notes):
                namesz, descsz, _ = struct.unpack_from("<III", notes, pos)
                if notes[pos + 12:pos + 12 + namesz] == b"VMCOREINFO\0":
                    f.seek(offset + pos + 12)
                    f.write(b"VMCOREINFX")
                    return True
                pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def evict(path: Path) -> None:
    """Drops this file's pages from the page cache (only this file's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def rss_mapped_kib(pid: int) -> int:
    """Resident file and shared-memory pages: what the agent has touched of its mapping."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("RssFile:", "RssShmem:")):
            total += int(line.split()[1])
    return total


def start_agent(args: list[str], cold: Path | None = None) -> tuple[AgentProcess, float, int]:
    if cold:
        evict(cold)
    began = time.perf_counter()
    agent = AgentProcess(args)
    return agent, time.perf_counter() - began, rss_mapped_kib(agent.proc.pid)


def ids_times(binary: Path, port: int, key: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([str(binary), "--agent", f"tcp://127.0.0.1:{port}", "--key", str(key)],
                       check=True, capture_output=True)
        times.append(time.perf_counter() - began)
    return times


def ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1e3:8.1f} ({min(times) * 1e3:.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--keep-guest", metavar="NAME", help="use this running guest")
    parser.add_argument("--dir", type=Path, help="where to write the dumps (default: /tmp)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llview-bench-dump-", dir=args.dir))
    vm = None
    try:
        key = work / "key.bin"
        generate_key_file(key)
        if args.keep_guest:
            vm = VM.load(args.keep_guest)
        else:
            vm = VM.start(f"bench-dump-{os.getpid()}", quiet=True, vmcoreinfo=True)
        pslist, os_version = build_ids("pslist", work), build_ids("os_version", work)
        dump = work / "guest.elf"
        result = vm.dump(dump)
        print(f"== dump: {result.size / 2**20:.0f} MiB ELF core in {result.seconds:.2f} s "
              f"(guest {vm.name}, {vm.ram_size >> 20} MiB RAM, vmcoreinfo device "
              f"{'on' if vm.vmcoreinfo else 'off'})")
        scan = work / "guest-no-note.elf"
        shutil.copyfile(dump, scan)
        has_note = hide_vmcoreinfo_note(scan)
        if not has_note:
            print("   (the dump has no VMCOREINFO note: both dump rows scan)")
        sources = {
            "live RAM file": (["--ram", vm.ram_path, "--ram-size", str(vm.ram_size)], None),
            "dump, its VMCOREINFO note": (["--image", str(dump)], dump),
            "dump, RAM scanned for the note": (["--image", str(scan)], scan),
        }
        print("\n== agent start-up to ready, ms: median (min) over "
              f"{max(3, args.runs // 2)} starts; pages of the mapping touched (RssFile + RssShmem)")
        agents = {}
        for label, (flags, path) in sources.items():
            times: dict[bool, list[float]] = {False: [], True: []}
            rss = 0
            # No agent may keep the dump mapped while its pages are evicted.
            for evicted in ([False, True] if path else [False]):
                for _ in range(max(3, args.runs // 2)):
                    agent, seconds, rss = start_agent([*flags, "--key-file", str(key)],
                                                      cold=path if evicted else None)
                    times[evicted].append(seconds)
                    agent.stop()
            agents[label] = AgentProcess([*flags, "--key-file", str(key)])
            cold_text = f"cold {ms(times[True])}" if path else "cold   (n/a: /dev/shm)"
            print(f"  {label:32} warm {ms(times[False])}  {cold_text}  "
                  f"touched {rss / 1024:6.1f} MiB")
        print(f"\n== whole IDS process, ms: median (min) of {args.runs} runs")
        for label, agent in agents.items():
            ps = ids_times(pslist, agent.port, key, args.runs)
            ov = ids_times(os_version, agent.port, key, args.runs)
            print(f"  {label:32} pslist {ms(ps)}   os_version {ms(ov)}")
        for agent in agents.values():
            agent.stop()
    finally:
        if vm is not None and not args.keep_guest:
            vm.stop(quiet=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
