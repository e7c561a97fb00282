"""The monitored guest: initramfs contents, argument checks, and a real QEMU guest via `vm exec`."""

import base64
import gzip
import hashlib
import json
import mmap
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llview.paths import LlviewError
from llview.vm import initramfs, qemu
from llview.vm.qemu import VM, check_name, parse_size

LLVIEW = [sys.executable, "-m", "llview.cli"]


def read_cpio(data: bytes) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, contents) of a newc archive; an independent reader of what we write."""
    entries, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701", f"bad magic at {pos}"
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode()
        body_start = (name_start + namesize + 3) & ~3
        body = data[body_start:body_start + size]
        pos = (body_start + size + 3) & ~3
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, body)


def test_initramfs_contents():
    entries = read_cpio(initramfs.build_archive(initramfs.find_busybox()))
    mode, init = entries["init"]
    assert mode & 0o111 and init.startswith(b"#!/bin/busybox sh")
    assert entries["bin/busybox"][1] == initramfs.find_busybox().read_bytes()
    assert entries["dev/console"][0] & 0o170000 == 0o020000  # character device
    daemons = entries["etc/llview/daemons"][1].decode().split()
    assert daemons == list(initramfs.KNOWN_DAEMONS)
    for name in daemons:
        mode, script = entries[f"bin/{name}"]
        assert mode & 0o111 and script.startswith(b"#!/bin/sh")


def test_initramfs_is_cached_and_gzip(tmp_path, monkeypatch):
    monkeypatch.setenv("LLVIEW_HOME", str(tmp_path))
    first = initramfs.build_initramfs(quiet=True)
    mtime = first.stat().st_mtime_ns
    assert initramfs.build_initramfs(quiet=True) == first
    assert first.stat().st_mtime_ns == mtime
    assert gzip.decompress(first.read_bytes()) == initramfs.build_archive(
        initramfs.find_busybox())


def test_extra_archive_places_files_with_parents(tmp_path):
    host = tmp_path / "agent.ko"
    host.write_bytes(b"\x7fELF module bytes")
    host.chmod(0o640)
    entries = read_cpio(initramfs.build_extra_archive({"/lib/modules/x/agent.ko": host}))
    assert list(entries) == ["lib", "lib/modules", "lib/modules/x", "lib/modules/x/agent.ko"]
    mode, body = entries["lib/modules/x/agent.ko"]
    assert body == host.read_bytes() and mode & 0o777 == 0o640


@pytest.mark.parametrize("guest_path", ["relative/x", "/a/../etc/passwd", "/a//b", "/"])
def test_extra_archive_rejects_odd_guest_paths(tmp_path, guest_path):
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(LlviewError, match="guest path"):
        initramfs.build_extra_archive({guest_path: tmp_path / "f"})


def test_extra_archive_missing_host_file(tmp_path):
    with pytest.raises(LlviewError, match="does not exist"):
        initramfs.build_extra_archive({"/x": tmp_path / "absent"})


def test_known_comms_are_truncated_like_the_kernel():
    comms = initramfs.known_comms()
    assert "llv-netmon-daem" in comms and all(len(c) <= 15 for c in comms)


@pytest.mark.parametrize("text,size", [("512M", 512 << 20), ("1G", 1 << 30), ("256", 256 << 20),
                                       ("768MiB", 768 << 20)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "64M", "513M", "-1G"])
def test_parse_size_rejects(text):
    with pytest.raises(LlviewError, match="memory size"):
        parse_size(text)


@pytest.mark.parametrize("name", ["", "a/b", "../x", "-x", "x" * 33, "a b"])
def test_bad_vm_names(name):
    with pytest.raises(LlviewError, match="bad VM name"):
        check_name(name)


def test_load_unknown_vm(tmp_path, monkeypatch):
    monkeypatch.setenv("LLVIEW_HOME", str(tmp_path))
    with pytest.raises(LlviewError, match="no VM named 'ghost'"):
        VM.load("ghost")


def test_start_without_profile_says_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("LLVIEW_HOME", str(tmp_path))
    with pytest.raises(LlviewError, match="llview kernel fetch"):
        VM.start("nokernel", quiet=True)
    assert not list(Path("/dev/shm").glob("llview-nokernel-*"))


# ---- on the real guest ---------------------------------------------------------------------


def guest_processes(vm: VM) -> dict[int, tuple[int, str]]:
    """pid -> (ppid, comm) from the guest's /proc/PID/stat."""
    rc, out = vm.exec("cat /proc/[0-9]*/stat 2>/dev/null")
    assert rc in (0, 1)
    table = {}
    for line in out.splitlines():
        match = re.match(r"(\d+) \((.*)\) \S (\d+) ", line)
        if match:
            table[int(match.group(1))] = (int(match.group(3)), match.group(2))
    return table


@pytest.mark.guest
def test_proc_version_is_the_profiles_kernel(guest, kernel_profile):
    rc, out = guest.exec("cat /proc/version")
    assert rc == 0
    assert out.startswith(f"Linux version {kernel_profile.release} ")
    assert kernel_profile.version in out


@pytest.mark.guest
def test_exit_status_and_stderr_propagate(guest):
    assert guest.exec("echo out; echo err >&2; exit 7") == (7, "out\nerr\n")
    rc, out = guest.exec("no-such-command")
    assert rc == 127 and "not found" in out
    assert guest.exec("printf 'a\\0b\\n\\n\\n'") == (0, "a\0b\n\n\n")
    assert guest.exec_raw("printf '\\377\\001'") == (0, b"\xff\x01")


@pytest.mark.guest
def test_exec_timeout_kills_the_command(guest):
    rc, _ = guest.exec("sleep 31; echo not-reached", timeout=1)
    assert rc == 143  # SIGTERM from the guest's timeout
    # The whole command went, its child `sleep 31` included.
    rc, out = guest.exec("ps -o args | grep -c '^sleep 31$'")
    assert out.strip() == "0"
    assert guest.exec("echo still-serving") == (0, "still-serving\n")


@pytest.mark.guest
def test_large_output_round_trips(guest):
    rc, out = guest.exec("seq 1 40000")
    assert rc == 0
    assert out.splitlines() == [str(i) for i in range(1, 40001)]


@pytest.mark.guest
def test_concurrent_execs_do_not_interleave(guest):
    results: dict[int, tuple[int, str]] = {}

    def run(i: int) -> None:
        results[i] = guest.exec(f"seq {i} {i + 2000}; exit {i}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(1, 5):
        assert results[i] == (i, "".join(f"{n}\n" for n in range(i, i + 2001)))


def send_raw(vm: VM, data: bytes) -> None:
    """Writes to the exec line as a client that then dies; waits so QEMU passes it all on."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(vm.exec_socket)
        s.sendall(data)
        time.sleep(1)


@pytest.mark.guest
def test_exec_recovers_from_a_dropped_client(guest):
    # A client that died mid-request leaves a header and part of a script on the line.
    send_raw(guest, b"@@LLVIEW-EXEC deadbeef 5\nZWNobyBzdGFsZQ==\nZWNo")
    assert guest.exec("echo after-fragment") == (0, "after-fragment\n")
    send_raw(guest, b"garbage line with words\n\x00\xff\n@@LLVIEW-RUN deadbeef\n")
    assert guest.exec("echo after-garbage") == (0, "after-garbage\n")
    # A complete request from someone else is answered, and the next exec still gets its own.
    send_raw(guest, b"\n@@LLVIEW-EXEC 0bad 5\nZWNobyBzdGFsZQ==\n@@LLVIEW-RUN 0bad\n")
    assert guest.exec("echo mine") == (0, "mine\n")


@pytest.mark.guest
def test_resent_request_runs_once(guest, monkeypatch):
    # Keep the guest busy with someone else's request so ours is not acknowledged in time:
    # the host sends it again, and the guest must still run it only once.
    monkeypatch.setattr(qemu, "ACK_TIMEOUT", 2.0)
    busy = base64.b64encode(b"sleep 7").decode()
    send_raw(guest, f"\n@@LLVIEW-EXEC 0bed 20\n{busy}\n@@LLVIEW-RUN 0bed\n".encode())
    began = time.monotonic()
    rc, out = guest.exec("echo ran >> /tmp/once-marker; wc -l < /tmp/once-marker")
    assert (rc, out.strip()) == (0, "1")
    assert time.monotonic() - began >= 3  # it did wait behind the busy request
    time.sleep(1)
    assert guest.exec("cat /tmp/once-marker") == (0, "ran\n")


@pytest.mark.guest
def test_exec_refuses_oversized_script(guest):
    with pytest.raises(LlviewError, match="too long"):
        guest.exec("true #" + "x" * (1 << 20))


@pytest.mark.guest
def test_known_processes_run(guest):
    table = guest_processes(guest)
    by_comm: dict[str, list[int]] = {}
    for pid, (_, comm) in table.items():
        by_comm.setdefault(comm, []).append(pid)
    for comm in initramfs.known_comms():
        assert comm in by_comm, f"{comm} not running in the guest"
    assert table[1][1] == "init"
    # llv-worker forks two children that keep its comm and name it as their parent.
    (worker,) = [p for p in by_comm["llv-worker"] if table[p][0] == 1]
    children = [p for p in by_comm["llv-worker"] if table[p][0] == worker]
    assert len(children) == 2
    assert table[2][1] == "kthreadd"
    kernel_threads = [p for p, (ppid, _) in table.items() if ppid == 2]
    assert len(kernel_threads) >= 10


@pytest.mark.guest
def test_task_count_near_target(guest):
    rc, out = guest.exec("ls -d /proc/[0-9]* 2>/dev/null | wc -l")
    assert rc == 0
    # The target counts kernel threads too; exec's own shells add a few, kworkers come and go.
    assert abs(int(out) - guest.tasks) <= 15
    assert guest.guest_tasks >= guest.tasks


@pytest.mark.guest
def test_five_level_paging_and_kaslr(guest):
    rc, out = guest.exec("grep -c -w la57 /proc/cpuinfo")
    assert rc == 0 and int(out) >= 1  # the kernel clears la57 unless it runs 5-level tables
    assert guest.la57
    rc, out = guest.exec("cat /proc/cmdline; grep -m 1 ' T _text$' /proc/kallsyms")
    assert "nokaslr" not in out
    text = int(re.search(r"^([0-9a-f]+) T _text$", out, re.M).group(1), 16)
    assert text != 0xFFFFFFFF81000000  # the unrandomised link address


@pytest.mark.guest
def test_ram_file_is_guest_memory(guest):
    ram = Path(guest.ram_path)
    assert ram.stat().st_size == guest.ram_size
    rc, version = guest.exec("cat /proc/version")
    assert rc == 0
    # A marker written by the guest must show up in the host's view of guest RAM.
    marker = f"llview-ram-marker-{os.getpid()}-{id(guest)}"
    rc, _ = guest.exec(f"echo {marker} > /tmp/marker")
    with ram.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        assert view.find(version.strip().encode()[:80]) >= 0  # linux_banner
        assert view.find(marker.encode()) >= 0


@pytest.mark.guest
def test_state_reload_and_cli(guest):
    again = VM.load(guest.name)
    assert again == guest and again.alive()
    assert again.profile().release == guest.kernel_release
    assert 1024 <= guest.host_port < 65536
    done = subprocess.run([*LLVIEW, "vm", "exec", guest.name, "--", "cat /proc/1/comm; exit 5"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (5, "init\n")
    done = subprocess.run([*LLVIEW, "vm", "exec", guest.name, "--timeout", "1", "--",
                           "sleep", "20"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 143 and "timed out after 1 s" in done.stderr
    info = json.loads(subprocess.run([*LLVIEW, "vm", "info", guest.name], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["ram_path"] == guest.ram_path and info["running"] is True
    listing = subprocess.run([*LLVIEW, "vm", "list"], capture_output=True, text=True,
                             check=True).stdout
    assert re.search(rf"^{guest.name}\s+running\s+{guest.pid}\s", listing, re.M)


@pytest.mark.guest
def test_start_refuses_running_name(guest):
    with pytest.raises(LlviewError, match="already running"):
        VM.start(guest.name, quiet=True)
    assert guest.alive()


@pytest.mark.guest
def test_lifecycle_start_exec_stop(kernel_profile, tmp_path):
    name = f"pytest-life-{os.getpid()}"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(300_000))
    vm = VM.start(name, kernel=kernel_profile.release, memory="256M", tasks=60, quiet=True,
                  files={"/opt/llview/payload.bin": payload})
    try:
        assert Path(vm.ram_path).stat().st_size == 256 << 20
        rc, out = vm.exec("grep MemTotal /proc/meminfo")
        assert rc == 0 and 200_000 < int(out.split()[1]) <= 262_144
        rc, out = vm.exec("md5sum /opt/llview/payload.bin")
        assert (rc, out.split()[0]) == (0, hashlib.md5(payload.read_bytes()).hexdigest())
    finally:
        done = subprocess.run([*LLVIEW, "vm", "stop", name], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not vm.alive()
    status = Path(f"/proc/{vm.pid}/status")
    assert not status.exists() or "State:\tZ" in status.read_text()  # gone, or an unreaped zombie
    assert not Path(vm.ram_path).exists()
    with pytest.raises(LlviewError, match="no VM named"):
        VM.load(name)
    with pytest.raises(LlviewError, match="not running"):
        vm.exec("true")


def test_unbootable_kernel_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("LLVIEW_HOME", str(tmp_path / "home"))
    root = tmp_path / "root"
    release = "9.8.0-7-amd64"
    for d in ("boot", f"usr/src/linux-headers-{release}", "usr/src/linux-headers-9.8.0-7-common",
              f"lib/modules/{release}"):
        (root / d).mkdir(parents=True)
    (root / "boot" / f"vmlinuz-{release}").write_bytes(b"not a kernel at all")
    (root / "boot" / f"config-{release}").write_text("CONFIG_X86_5LEVEL=y\n")
    with pytest.raises(LlviewError, match="QEMU failed to start: .*kernel"):
        VM.start("badkernel", kernel=str(root), quiet=True)
    assert not list(Path("/dev/shm").glob("llview-badkernel-*"))
    with pytest.raises(LlviewError, match="no VM named"):
        VM.load("badkernel")
