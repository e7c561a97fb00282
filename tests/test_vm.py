"""The monitored guest: initramfs contents, argument checks, and real QEMU guests via `vm exec`:
the plain one (conftest's `guest`) and the one with the in-kernel agent, the ivshmem region and
the confined workload (conftest's `kernel_guest`, shared with the other test files)."""

import base64
import gzip
import hashlib
import json
import mmap
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llview import kmod
from llview.paths import REPO, LlviewError
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
    mode, container = entries[f"bin/{initramfs.CONTAINER_INIT}"]
    assert mode & 0o111 and b"/etc/llview/daemons" in container
    # The shared image holds nothing of one guest's agent: no key, no agent commands.
    assert kmod.GUEST_KEY_PATH.lstrip("/") not in entries
    assert initramfs.AGENT_INIT_PATH.lstrip("/") not in entries


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


def test_extra_archive_blobs_and_modes(tmp_path):
    host = tmp_path / "m.ko"
    host.write_bytes(b"module")
    host.chmod(0o755)
    entries = read_cpio(initramfs.build_extra_archive(
        {"/lib/m.ko": (host, 0o644)}, {"/etc/llview/agent.key": (b"k" * 32, 0o600)}))
    assert entries["lib/m.ko"] == (0o100644, b"module")
    assert entries["etc/llview/agent.key"] == (0o100600, b"k" * 32)
    assert entries["etc"][0] & 0o170000 == 0o040000


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


@pytest.mark.parametrize("options,message", [
    ({"agent": "kernel"}, "needs a key"),
    ({"key": b"k" * 32}, "only used with --agent kernel"),
    ({"agent": "kernel", "key": b"short"}, "must be 32 bytes"),
    ({"agent": "hypervisor"}, "bad agent 'hypervisor'"),
    ({"host_port": 70000}, "--agent-port 70000"),
])
def test_start_rejects_bad_agent_options(tmp_path, monkeypatch, options, message):
    monkeypatch.setenv("LLVIEW_HOME", str(tmp_path))
    with pytest.raises(LlviewError, match=re.escape(message)):
        VM.start("badopts", quiet=True, **options)
    assert not (tmp_path / "vms" / "badopts").exists()
    assert not list(Path("/dev/shm").glob("llview-badopts-*"))


def test_cli_kernel_agent_key_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("LLVIEW_HOME", str(tmp_path))
    done = subprocess.run([*LLVIEW, "vm", "start", "--name", "k1", "--agent", "kernel"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--agent kernel needs --key FILE" in done.stderr
    loose = tmp_path / "loose.key"
    loose.write_bytes(os.urandom(32))
    loose.chmod(0o644)
    done = subprocess.run([*LLVIEW, "vm", "start", "--name", "k1", "--agent", "kernel",
                           "--key", str(loose)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "readable by others" in done.stderr
    done = subprocess.run([*LLVIEW, "vm", "start", "--name", "k1", "--key", str(loose)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "only used with --agent kernel" in done.stderr


def test_shm_size_is_the_headers():
    header = (REPO / "protocol" / "llview_shm.h").read_text()
    shift = re.search(r"#define LLV_SHM_SIZE \(1u << (\d+)\)", header)
    assert shift and qemu.SHM_SIZE == 1 << int(shift.group(1))


def test_qemu_command_for_agent_shm_and_confinement(tmp_path):
    vm = VM(name="cmd", pid=0, state_dir=str(tmp_path), ram_path="/dev/shm/x.ram",
            ram_size=512 << 20, host_port=4321, console_log="c", exec_socket="e",
            qmp_socket="q", kernel_release="r", kernel_dir="d", accel="tcg", tasks=9,
            agent="kernel", shm_path="/dev/shm/llview-cmd-0.shm", shm_size=qemu.SHM_SIZE,
            confined=True)
    cmd = vm._qemu_command("vmlinuz", "initrd")
    joined = " ".join(cmd)
    assert (f"memory-backend-file,id=shm0,size={qemu.SHM_SIZE},"
            "mem-path=/dev/shm/llview-cmd-0.shm,share=on") in joined
    assert cmd[cmd.index("ivshmem-plain,memdev=shm0") - 1] == "-device"
    assert "llview.confine=1" in cmd[cmd.index("-append") + 1]
    assert "restrict=on,hostfwd=tcp:127.0.0.1:4321-:7070" in joined
    assert vm.urls() == ["tcp://127.0.0.1:4321", "shm:/dev/shm/llview-cmd-0.shm"]
    plain = VM(**{**vm.__dict__, "agent": "none", "shm_path": "", "confined": False})
    assert "ivshmem" not in " ".join(plain._qemu_command("v", "i"))
    assert "llview.confine=0" in " ".join(plain._qemu_command("v", "i"))
    assert plain.urls() == []


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


def test_exec_never_acknowledged_is_sent_afresh(tmp_path, monkeypatch):
    # A fake exec line that ignores the first request it is sent, as the stalled guest line
    # did, and serves any other: the host sends the request again under a new id (never
    # acknowledged, so it never ran) and gets its answer.
    monkeypatch.setattr(qemu, "ACK_TIMEOUT", 0.3)
    monkeypatch.setattr(qemu.VM, "alive", lambda self: True)
    path = tmp_path / "exec.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    ids: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            data = b""
            conn.settimeout(2)
            try:
                while b"@@LLVIEW-RUN " not in data or not data.endswith(b"\n"):
                    data += conn.recv(4096)
            except OSError:
                conn.close()
                continue
            rid = data.split(b"@@LLVIEW-RUN ")[1].split()[0].decode()
            if not ids or rid == ids[0]:
                ids.append(rid)        # the stalled line: no answer, however often asked
                continue
            ids.append(rid)
            out = base64.b64encode(b"fresh\n").decode()
            conn.sendall(f"@@LLVIEW-ACK {rid}\n@@LLVIEW-BEGIN {rid}\n{out}\n"
                         f"@@LLVIEW-END {rid} 0 6\n".encode())
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    vm = qemu.VM(name="fake", pid=1, state_dir=str(tmp_path), ram_path="", ram_size=0,
                 host_port=0, console_log="", exec_socket=str(path), qmp_socket="",
                 kernel_release="", kernel_dir="", accel="tcg", tasks=0)
    try:
        assert vm.exec("echo fresh", timeout=1) == (0, "fresh\n")
    finally:
        server.close()
    assert len(set(ids)) == 2 and ids.count(ids[0]) == qemu.EXEC_RESENDS + 1


@pytest.mark.guest
def test_lost_reply_is_sent_again(guest):
    # A request whose reply went to a client that is gone: asked again, the guest answers with
    # the same reply instead of running it a second time.
    script = base64.b64encode(b"echo ran >> /tmp/reply-marker; wc -l < /tmp/reply-marker")
    request = f"\n@@LLVIEW-EXEC 0feed 20\n{script.decode()}\n@@LLVIEW-RUN 0feed\n".encode()
    send_raw(guest, request)
    time.sleep(2)
    rc, out = guest._exchange(request, "0feed", time.monotonic() + 30)
    assert (rc, out.strip()) == (0, b"1")
    assert guest.exec("cat /tmp/reply-marker") == (0, "ran\n")


@pytest.mark.guest
def test_silent_request_is_asked_again_and_runs_once(guest, monkeypatch):
    # The host asks again for a reply that is slow to come; the repeat waits behind the
    # running request and gets its reply again, never a second run.
    monkeypatch.setattr(qemu, "EXEC_REPLY_RESEND", 1.0)
    rc, out = guest.exec("echo ran >> /tmp/slow-marker; sleep 4; wc -l < /tmp/slow-marker")
    assert (rc, out.strip()) == (0, "1")
    time.sleep(5)   # the repeats' replies come and go
    assert guest.exec("cat /tmp/slow-marker") == (0, "ran\n")


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
    # The daemons' parent: the container's init when confined (the default), else init.
    assert guest.confined
    (container,) = by_comm[initramfs.CONTAINER_INIT]
    for comm in initramfs.known_comms():
        assert any(table[pid][0] == container for pid in by_comm[comm]), comm
    # llv-worker forks two children that keep its comm and name it as their parent.
    (worker,) = [p for p in by_comm["llv-worker"] if table[p][0] == container]
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
    # Also the other corners: no confinement (daemons under init), an ivshmem region without
    # an agent, a chosen forwarded port.
    port = qemu._free_local_port()
    vm = VM.start(name, kernel=kernel_profile.release, memory="256M", tasks=60, quiet=True,
                  files={"/opt/llview/payload.bin": payload}, confine=False, shm=True,
                  host_port=port)
    try:
        assert Path(vm.ram_path).stat().st_size == 256 << 20
        assert (vm.host_port, vm.agent, vm.confined, vm.confined_comms) == (port, "none",
                                                                            False, [])
        assert Path(vm.shm_path).stat().st_size == qemu.SHM_SIZE
        assert not (Path(vm.state_dir) / "initrd.cpio.gz").exists()  # overlay gone once loaded
        rc, out = vm.exec("grep MemTotal /proc/meminfo")
        assert rc == 0 and 200_000 < int(out.split()[1]) <= 262_144
        rc, out = vm.exec("md5sum /opt/llview/payload.bin")
        assert (rc, out.split()[0]) == (0, hashlib.md5(payload.read_bytes()).hexdigest())
        table = guest_processes(vm)
        for comm in initramfs.known_comms():  # unconfined: init starts the daemons itself
            assert any(c == comm and ppid == 1 for ppid, c in table.values()), comm
        assert initramfs.CONTAINER_INIT not in {c for _, c in table.values()}
        rc, out = vm.exec("cat /sys/bus/pci/devices/*/device; cat /proc/modules")
        assert "0x1110" in out.split() and "llview_agent" not in out
    finally:
        done = subprocess.run([*LLVIEW, "vm", "stop", name], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not vm.alive()
    status = Path(f"/proc/{vm.pid}/status")
    assert not status.exists() or "State:\tZ" in status.read_text()  # gone, or an unreaped zombie
    assert not Path(vm.ram_path).exists()
    assert not Path(vm.shm_path).exists()
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


# ---- the guest with the in-kernel agent, ivshmem and the confined workload ----------------------


@pytest.mark.guest
def test_kernel_agent_loaded_and_reachable(kernel_agent):
    from helpers.kernel_guest import serving

    vm = kernel_agent
    assert vm.agent == "kernel" and VM.load(vm.name) == vm
    assert vm.urls() == [f"tcp://127.0.0.1:{vm.host_port}", f"shm:{vm.shm_path}"]
    modules = [line.split()[0] for line in guest_out(vm, "cat /proc/modules").splitlines()]
    assert "llview_agent" in modules
    # It answers on the forwarded port only with the right key.
    assert not serving(vm, os.urandom(32))
    info = json.loads(subprocess.run([*LLVIEW, "vm", "info", vm.name], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["agent_urls"] == vm.urls() and info["agent"] == "kernel"
    listing = subprocess.run([*LLVIEW, "vm", "list"], capture_output=True, text=True,
                             check=True).stdout
    assert re.search(rf"^{vm.name}\s+running\s+{vm.pid}\s+{vm.host_port}\s+kernel\+shm\s",
                     listing, re.M)
    print(f"\nguest with the in-kernel agent booted in {vm.boot_seconds:.1f} s")


def guest_out(vm: VM, command: str) -> str:
    rc, out = vm.exec(command)
    assert rc == 0, f"{command!r} failed in the guest ({rc}): {out}"
    return out


@pytest.mark.guest
def test_kernel_agent_key_never_leaks(kernel_agent, kernel_key_file):
    vm = kernel_agent
    key = kernel_key_file.read_bytes()
    forms = [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key)]

    def assert_no_key(data: bytes, where: str) -> None:
        assert not any(form in data for form in forms), f"the key is visible in {where}"

    assert vm.exec(f"test -e {kmod.GUEST_KEY_PATH}")[0] == 1, "key file left in the guest"
    params = guest_out(vm, "ls /sys/module/llview_agent/parameters").split()
    assert params and "key" not in " ".join(params)
    for source in ("cat /proc/cmdline", "dmesg", "cat /sys/module/llview_agent/parameters/*",
                   "cat /proc/modules", "ls -la /etc/llview /tmp"):
        assert_no_key(vm.exec_raw(source)[1], f"the guest's `{source}`")
    # On the host: no overlay left, nothing in the state directory, QEMU's command line and
    # environment, nor the shared cached images.
    state = Path(vm.state_dir)
    assert state.stat().st_mode & 0o777 == 0o700
    assert not (state / "initrd.cpio.gz").exists()
    for leftover in state.iterdir():
        if leftover.is_file():
            assert_no_key(leftover.read_bytes(), str(leftover))
    for name in ("cmdline", "environ"):
        assert_no_key(Path(f"/proc/{vm.pid}/{name}").read_bytes(), f"QEMU's {name}")
    for image in (state.parent.parent / "vm-images").glob("*.cpio.gz"):
        assert_no_key(gzip.decompress(image.read_bytes()), str(image))


@pytest.mark.guest
def test_ivshmem_device_is_the_region_file(kernel_guest):
    vm = kernel_guest
    out = guest_out(vm, "for d in /sys/bus/pci/devices/*; do "
                        "echo $d $(cat $d/vendor) $(cat $d/device); done")
    devices = [line.split() for line in out.splitlines()]
    (ivshmem,) = [d for d, vendor, device in devices if (vendor, device) == ("0x1af4", "0x1110")]
    # BAR 2 is the shared memory: the region file's size.
    bar2 = guest_out(vm, f"sed -n 3p {ivshmem}/resource").split()
    assert int(bar2[1], 16) - int(bar2[0], 16) + 1 == qemu.SHM_SIZE
    region = Path(vm.shm_path)
    assert region.stat().st_size == qemu.SHM_SIZE
    assert region.stat().st_mode & 0o777 == 0o600
    assert Path(vm.ram_path).stat().st_mode & 0o777 == 0o600
    # What the guest writes into BAR 2 shows in the host file: the same memory.
    with region.open("rb") as f:
        magic = struct.unpack("<I", f.read(4))[0]
    assert magic == 0x53564C4C, f"the agent has not set up the region ({magic:#x})"


@pytest.mark.guest
def test_confined_workload_runs_in_its_own_namespaces(kernel_guest):
    vm = kernel_guest
    assert vm.confined and vm.confined_comms[0] == initramfs.CONTAINER_INIT
    table = guest_processes(vm)
    by_comm: dict[str, list[int]] = {}
    for pid, (_, comm) in table.items():
        by_comm.setdefault(comm, []).append(pid)
    kinds = ("pid", "mnt", "net", "uts")

    def namespaces(pid: int | str) -> dict[str, str]:
        out = guest_out(vm, f"ls -l /proc/{pid}/ns/")
        links = dict(re.findall(r" (\w+) -> (\S+)", out))
        return {kind: links[kind] for kind in kinds}

    initial = namespaces(1)
    container = by_comm[initramfs.CONTAINER_INIT][0]
    inside = namespaces(container)
    for kind in kinds:
        assert inside[kind] != initial[kind], f"{kind} namespace not separate"
    for comm in vm.confined_comms[1:]:
        for pid in by_comm[comm]:
            assert namespaces(pid) == inside, comm
    # The agent's kernel threads and the exec server's shell stay outside.
    assert namespaces(by_comm["llview_agent"][0]) == initial
    assert namespaces("$$") == initial
    # Seen from inside: its own hostname, only a loopback interface, itself as pid 1.
    assert guest_out(vm, f"nsenter -t {container} -u hostname").strip() == \
        initramfs.CONTAINER_HOSTNAME
    links = guest_out(vm, f"nsenter -t {container} -n ip -o link").splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"]
    assert guest_out(vm, f"grep NSpid /proc/{container}/status").split()[1:] == \
        [str(container), "1"]
