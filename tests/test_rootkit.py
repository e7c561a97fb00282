"""The planted rootkit (tests/rootkit/lvrootkit.c) in a real guest: each technique does what
it claims, seen from inside the guest, and its undo restores the kernel.

Ground truth comes from the guest's own interfaces: /proc/modules, /sys/module, /proc/kallsyms,
kill(2) and getdents64 results, /proc/net/tcp, /proc/PID/status, tracefs, `renice -u` (which
walks the task list with for_each_process_thread) and /proc/kcore, which shows kernel memory
(the syscall table, tcp4_seq_ops, keyboard_notifier_list) as the kernel itself sees it.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from collections.abc import Iterator

import pytest
from helpers.rootkit import (
    CONTROL,
    DEFAULT_PORT,
    HIDE_PREFIX,
    MODULE,
    SIG_FTRACE,
    SIG_TABLE,
    Rootkit,
    build_rootkit,
    kernel_trouble,
)

from llview.cli import main as llview_main
from llview.kernel.profile import Profile
from llview.vm.qemu import PUSH_CHUNK, VM

pytestmark = pytest.mark.guest

USER, UID = "rkuser", 4242  # a non-root account for the cred and task-list checks
NR_KILL, NR_GETDENTS64 = 62, 217
TABLE_MARK = "Wrong medium type"  # strerror(EMEDIUMTYPE): the syscall-table hook's answer
FTRACE_MARK = "Name not unique on network"  # strerror(ENOTUNIQ): the ftrace hook's answer
NO_PROCESS = "No such process"
ENABLED_FUNCTIONS = ("mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null; "
                     "cat /sys/kernel/tracing/enabled_functions")


def run(vm: VM, script: str) -> str:
    rc, out = vm.exec(script)
    assert rc == 0, f"guest command failed ({rc}): {script!r}: {out}"
    return out


class Kmem:
    """Kernel memory read through the guest's /proc/kcore (an ELF core of the live kernel)."""

    def __init__(self, vm: VM):
        self.vm = vm
        rc, head = vm.exec_raw("dd if=/proc/kcore bs=4096 count=1 2>/dev/null")
        assert rc == 0 and head[:4] == b"\x7fELF", f"cannot read /proc/kcore: {head[:200]!r}"
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        self.loads: list[tuple[int, int, int]] = []
        for i in range(phnum):
            base = phoff + i * phentsize
            p_type, = struct.unpack_from("<I", head, base)
            offset, vaddr, _, filesz = struct.unpack_from("<QQQQ", head, base + 8)
            if p_type == 1:  # PT_LOAD
                self.loads.append((vaddr, offset, filesz))

    def read(self, addr: int, size: int) -> bytes:
        for vaddr, offset, filesz in self.loads:
            if vaddr <= addr and addr + size <= vaddr + filesz:
                start = offset + addr - vaddr
                first, last = start // 8, (start + size + 7) // 8
                rc, data = self.vm.exec_raw(f"dd if=/proc/kcore bs=8 skip={first} "
                                            f"count={last - first} 2>/dev/null")
                assert rc == 0, f"reading kcore at {addr:#x} failed"
                return data[start - first * 8: start - first * 8 + size]
        raise AssertionError(f"{addr:#x} is in no /proc/kcore segment")

    def u64(self, addr: int) -> int:
        return struct.unpack("<Q", self.read(addr, 8))[0]


def ksyms(vm: VM, *names: str) -> dict[str, int]:
    """Symbols' addresses from the guest's /proc/kallsyms, in one pass (grep over it takes
    seconds under TCG). "name" is a kernel symbol, "module:name" one of that module's."""
    wanted = {}
    for spec in names:
        module, _, name = spec.rpartition(":")
        wanted[(name, f"[{module}]" if module else "")] = spec
    words = "|".join(sorted({name for name, _ in wanted}))
    found = dict.fromkeys(names, 0)
    for line in run(vm, f"grep -wE '{words}' /proc/kallsyms || true").splitlines():
        fields = line.split()
        key = (fields[2], fields[3] if len(fields) > 3 else "")
        if key in wanted:
            found[wanted[key]] = int(fields[0], 16)
    missing = [spec for spec, addr in found.items() if not addr]
    assert not missing, f"not in /proc/kallsyms: {missing}"
    return found


def kill_result(vm: VM, sig: int) -> str:
    """What kill(99999, sig) says: no such process, unless a hook answers first."""
    rc, out = vm.exec(f"kill -{sig} 99999")
    assert rc != 0
    return out


def start_process(vm: VM, user: str | None = None) -> int:
    """A long sleep that outlives the exec call (reparented to init), optionally as USER."""
    if user:
        command = f'su -s /bin/sh -c "exec sleep 600" {user}'
    else:
        command = "sleep 600"
    return int(run(vm, f"{command} </dev/null >/dev/null 2>&1 & echo $!").split()[-1])


def nice(vm: VM, pid: int) -> int:
    return int(run(vm, f"cat /proc/{pid}/stat").rsplit(")", 1)[1].split()[16])


@pytest.fixture(scope="module")
def rk_guest(guest: VM) -> VM:
    """The session guest, with loopback up and a non-root account."""
    run(guest, "ip link set lo up; "
               f"grep -q '^{USER}:' /etc/passwd 2>/dev/null || "
               f"echo '{USER}:x:{UID}:{UID}::/tmp:/bin/sh' >> /etc/passwd; "
               f"grep -q '^{USER}:' /etc/group 2>/dev/null || echo '{USER}:x:{UID}:' >> /etc/group")
    return guest


@pytest.fixture(scope="module")
def rootkit(rk_guest: VM, kernel_profile: Profile) -> Iterator[Rootkit]:
    """lvrootkit loaded once for the techniques' tests; each test undoes what it planted."""
    rk = Rootkit.load(rk_guest, kernel_profile)
    yield rk
    if rk_guest.alive() and MODULE in run(rk_guest, "cat /proc/modules; ls /sys/module"):
        rk.remove()


@pytest.fixture
def kmem(rk_guest: VM) -> Kmem:
    return Kmem(rk_guest)


def test_builds_warning_free_and_cached(kernel_profile: Profile):
    first = build_rootkit(kernel_profile)
    assert build_rootkit(kernel_profile) == first
    assert first.stat().st_size < 200_000  # debug info stripped for the exec line


def test_push_checksummed_in_chunks(rk_guest: VM, tmp_path):
    data = os.urandom(PUSH_CHUNK + 1000)  # two chunks
    host = tmp_path / "blob.bin"
    host.write_bytes(data)
    rk_guest.push(host, "/tmp/rkpush/sub/blob.bin", mode=0o600)
    out = run(rk_guest, "sha256sum /tmp/rkpush/sub/blob.bin; stat -c %a /tmp/rkpush/sub/blob.bin; "
                        "ls /tmp/rkpush/sub")
    assert out.split() == [hashlib.sha256(data).hexdigest(), "/tmp/rkpush/sub/blob.bin", "600",
                           "blob.bin"]  # no .part file left


def test_cli_insmod_rmmod(rk_guest: VM, kernel_profile: Profile, capsys):
    ko = str(build_rootkit(kernel_profile))
    assert llview_main(["vm", "insmod", rk_guest.name, ko, "syscalls=2"]) == 0
    try:
        Rootkit(rk_guest).wait_planted({"syscalls": 2})
        assert TABLE_MARK in kill_result(rk_guest, SIG_TABLE)
        capsys.readouterr()
        # a second load fails with the guest's own words and its kernel log, not a traceback
        assert llview_main(["vm", "insmod", rk_guest.name, ko]) == 1
        err = capsys.readouterr().err
        assert "did not load" in err and "File exists" in err and "dmesg" in err
        assert "Traceback" not in err
        assert llview_main(["vm", "insmod", rk_guest.name, ko, "noequals"]) == 1
        assert "PARAM=VALUE" in capsys.readouterr().err
    finally:
        assert llview_main(["vm", "rmmod", rk_guest.name, MODULE]) == 0  # exit undoes it all
    assert NO_PROCESS in kill_result(rk_guest, SIG_TABLE)
    capsys.readouterr()
    assert llview_main(["vm", "rmmod", rk_guest.name, MODULE]) == 1
    assert "cannot unload lvrootkit" in capsys.readouterr().err


def test_control_file_lists_nothing_planted(rootkit: Rootkit):
    status = rootkit.status()
    assert list(status) == ["hide", "syscalls", "ftrace", "hide_pid", "unlink_pid", "tcp_seq",
                            "keylogger", "cred_pid", "flag_pid"]
    assert rootkit.planted() == {}
    rc, out = rootkit.vm.exec(f"echo 'plant nothing' > {CONTROL}")
    assert rc != 0 and "Invalid argument" in out


def test_hide_from_module_list(rootkit: Rootkit):
    vm = rootkit.vm
    assert f"{MODULE} " in run(vm, "cat /proc/modules")
    rootkit.plant("hide", 1)
    try:
        assert f"{MODULE} " not in run(vm, "cat /proc/modules")
        assert run(vm, f"grep -c '\\[{MODULE}\\]' /proc/kallsyms || true").strip() == "0"
        run(vm, f"test -d /sys/module/{MODULE}")  # hide=1 leaves the kobject
        rc, _ = vm.exec(f"rmmod {MODULE}")
        assert rc != 0  # delete_module looks the name up on the hidden list
        assert rootkit.status()["hide"][0] == "1"
    finally:
        rootkit.command("unhide")
    assert f"{MODULE} " in run(vm, "cat /proc/modules")


def test_hide_from_sysfs_and_mod_tree(rootkit: Rootkit):
    vm = rootkit.vm
    base = int(re.search(rf"^{MODULE} .* (0x[0-9a-f]+)", run(vm, "cat /proc/modules"),
                         re.M).group(1), 16)
    before = run(vm, f"cd /sys/module/{MODULE} && ls -a . holders notes sections")
    # %pS in tracefs names the ftrace callback's module through mod_tree (__module_address)
    named = re.compile(rf"rk_ft_callback\+0x0/0x[0-9a-f]+ \[{MODULE}\]")
    rootkit.plant("ftrace")
    try:
        assert named.search(run(vm, ENABLED_FUNCTIONS))
        rootkit.plant("hide", 2)
        try:
            assert "mod_tree=erased" in rootkit.status()["hide"]
            out = run(vm, f"cat /proc/modules; ls /sys/module; test -e /sys/module/{MODULE} "
                          "&& echo SYSFS-PRESENT || true")
            assert MODULE not in out
            assert "rk_ft_callback" not in run(vm, ENABLED_FUNCTIONS)
        finally:
            rootkit.command("unhide")
        assert named.search(run(vm, ENABLED_FUNCTIONS))
    finally:
        rootkit.undo("ftrace")
    # the directory comes back whole, or rmmod's sysfs teardown would warn
    assert run(vm, f"cd /sys/module/{MODULE} && ls -a . holders notes sections") == before
    assert int(run(vm, f"cat /sys/module/{MODULE}/sections/.text"), 16) == base
    assert run(vm, f"cat /sys/module/{MODULE}/initstate").strip() == "live"


def test_syscall_table(rootkit: Rootkit, kmem: Kmem):
    vm = rootkit.vm
    sym = ksyms(vm, "sys_call_table", "__x64_sys_kill", "__x64_sys_getdents64",
                f"{MODULE}:rk_sys_kill", f"{MODULE}:rk_sys_getdents64")
    table, kill, getdents64, hook_kill, hook_getdents64 = sym.values()
    assert kmem.u64(table + 8 * NR_KILL) == kill
    rootkit.plant("syscalls", 1)
    try:
        assert kmem.u64(table + 8 * NR_KILL) == hook_kill
        assert kmem.u64(table + 8 * NR_GETDENTS64) == hook_getdents64
        # this kernel dispatches through x64_sys_call: the table alone diverts nothing
        assert NO_PROCESS in kill_result(vm, SIG_TABLE)
    finally:
        rootkit.undo("syscalls")
    assert kmem.u64(table + 8 * NR_KILL) == kill
    assert kmem.u64(table + 8 * NR_GETDENTS64) == getdents64


def test_syscall_dispatch_hooks(rootkit: Rootkit):
    vm = rootkit.vm
    run(vm, f"mkdir -p /tmp/rkdir && touch /tmp/rkdir/{HIDE_PREFIX}secret /tmp/rkdir/plain")
    assert NO_PROCESS in kill_result(vm, SIG_TABLE)
    rootkit.plant("syscalls", 2)
    try:
        assert int(rootkit.status()["syscalls"][-1].split("=")[1]) >= 2  # dispatch_sites
        assert TABLE_MARK in kill_result(vm, SIG_TABLE)
        assert NO_PROCESS in kill_result(vm, 15)  # other calls reach the kernel's kill
        run(vm, "kill -0 $$")
        assert run(vm, "ls /tmp/rkdir").split() == ["plain"]
        run(vm, f"test -e /tmp/rkdir/{HIDE_PREFIX}secret")  # hidden from listings only
    finally:
        rootkit.undo("syscalls")
    assert NO_PROCESS in kill_result(vm, SIG_TABLE)
    assert run(vm, "ls /tmp/rkdir").split() == [f"{HIDE_PREFIX}secret", "plain"]


def test_ftrace_hook(rootkit: Rootkit):
    vm = rootkit.vm
    enabled = ENABLED_FUNCTIONS
    assert "__x64_sys_kill" not in run(vm, enabled)
    rootkit.plant("ftrace")
    try:
        assert FTRACE_MARK in kill_result(vm, SIG_FTRACE)
        assert NO_PROCESS in kill_result(vm, 15)
        assert re.search(r"^__x64_sys_kill .*R I", run(vm, enabled), re.M)  # regs + ipmodify
    finally:
        rootkit.undo("ftrace")
    assert NO_PROCESS in kill_result(vm, SIG_FTRACE)
    assert "__x64_sys_kill" not in run(vm, enabled)
    rootkit.plant("ftrace")  # planting again after an undo reuses the ops safely
    assert FTRACE_MARK in kill_result(vm, SIG_FTRACE)
    rootkit.undo("ftrace")


def test_hide_pid(rootkit: Rootkit):
    vm = rootkit.vm
    pid = start_process(vm, USER)
    try:
        rootkit.plant("hide_pid", pid)
        try:
            assert rootkit.status()["hide_pid"][0] == str(pid)
            assert NO_PROCESS in run(vm, f"kill -0 {pid} 2>&1 || true")
            run(vm, f"! test -e /proc/{pid}")
            # readdir still finds it (through PIDTYPE_TGID) but the lookup by pid fails
            assert f"/proc/{pid}: No such file" in run(vm, "ls /proc 2>&1 >/dev/null || true")
            # still on the task list: renice -u walks it and reaches the hidden task
            run(vm, f"renice 3 -u {USER}")
        finally:
            rootkit.undo("hide_pid")
        run(vm, f"kill -0 {pid}")
        assert nice(vm, pid) == 3
    finally:
        vm.exec(f"kill {pid}")


def test_unlink_pid(rootkit: Rootkit):
    vm = rootkit.vm
    pid, other = start_process(vm, USER), start_process(vm, USER)
    try:
        rootkit.plant("unlink_pid", pid)
        try:
            assert rootkit.status()["unlink_pid"][0] == str(pid)
            run(vm, f"kill -0 {pid} && test -e /proc/{pid}/status")  # still in the pid table
            run(vm, f"renice 4 -u {USER}")  # absolute: all of USER's tasks get nice 4
            assert (nice(vm, pid), nice(vm, other)) == (0, 4)  # the task list misses it
        finally:
            rootkit.undo("unlink_pid")
        run(vm, f"renice 8 -u {USER}")
        assert (nice(vm, pid), nice(vm, other)) == (8, 8)
    finally:
        vm.exec(f"kill {pid} {other}")


def test_tcp_seq(rootkit: Rootkit, kmem: Kmem):
    vm = rootkit.vm
    other = DEFAULT_PORT + 1
    ops, show, hook = ksyms(vm, "tcp4_seq_ops", "tcp4_seq_show",
                            f"{MODULE}:rk_tcp4_show").values()
    show_at = ops + 24  # struct seq_operations: start, stop, next, show
    assert kmem.u64(show_at) == show
    listeners = run(vm, f"for p in {DEFAULT_PORT} {other}; do "
                        "nc -l -p $p 127.0.0.1 </dev/null >/dev/null 2>&1 & echo $!; done; "
                        "sleep 0.5").split()
    try:
        table = run(vm, "cat /proc/net/tcp")
        assert f":{DEFAULT_PORT:04X} " in table and f":{other:04X} " in table
        rootkit.plant("tcp_seq")
        try:
            table = run(vm, "cat /proc/net/tcp")
            assert f":{DEFAULT_PORT:04X} " not in table and f":{other:04X} " in table
            assert kmem.u64(show_at) == hook
        finally:
            rootkit.undo("tcp_seq")
        assert f":{DEFAULT_PORT:04X} " in run(vm, "cat /proc/net/tcp")
        assert kmem.u64(show_at) == show
    finally:
        vm.exec(f"kill {' '.join(listeners)}")


def test_keylogger(rootkit: Rootkit, kmem: Kmem):
    vm = rootkit.vm
    chain, ours = ksyms(vm, "keyboard_notifier_list", f"{MODULE}:rk_kbd_nb").values()
    head_at = chain + 8  # struct atomic_notifier_head: spinlock_t lock; head
    assert kmem.u64(head_at) != ours
    rootkit.plant("keylogger")
    try:
        assert rootkit.status()["keylogger"][0] == "1"
        assert kmem.u64(head_at) == ours
    finally:
        rootkit.undo("keylogger")
    assert kmem.u64(head_at) != ours
    assert rootkit.status()["keylogger"][0] == "0"


def test_cred_pid(rootkit: Rootkit):
    vm = rootkit.vm
    pid = start_process(vm, USER)
    ids = f"grep -E '^(Uid|Gid):' /proc/{pid}/status"
    try:
        assert run(vm, ids).split() == ["Uid:", *[str(UID)] * 4, "Gid:", *[str(UID)] * 4]
        rootkit.plant("cred_pid", pid)
        try:
            assert run(vm, ids).split() == ["Uid:", "0", "0", "0", "0", "Gid:", "0", "0", "0", "0"]
            assert "init_cred=" in " ".join(rootkit.status()["cred_pid"])
        finally:
            rootkit.undo("cred_pid")
        assert run(vm, ids).split() == ["Uid:", *[str(UID)] * 4, "Gid:", *[str(UID)] * 4]
    finally:
        vm.exec(f"kill {pid}")


def test_flag_pid(rootkit: Rootkit):
    """The marker bit shows in the task's flags, field 9 of /proc/PID/stat."""
    vm = rootkit.vm
    pid = start_process(vm)

    def flags() -> int:
        # comm may hold spaces: the fields after it start past the last ')'
        return int(run(vm, f"cat /proc/{pid}/stat").rsplit(")", 1)[1].split()[6])

    try:
        assert not flags() & 0x01000000
        rootkit.plant("flag_pid", pid)
        try:
            assert flags() & 0x01000000
            assert rootkit.planted()["flag_pid"] == str(pid)
        finally:
            rootkit.undo("flag_pid")
        assert not flags() & 0x01000000
    finally:
        vm.exec(f"kill {pid}")


def test_everything_undo_all_and_unload(rootkit: Rootkit):
    """All techniques at once, processes exiting while hidden, undo all, rmmod, a clean log;
    then the same planted by module parameters at load."""
    vm = rootkit.vm
    hidden, unlinked, raised = (start_process(vm, USER) for _ in range(3))
    for line in ("hide 2", "syscalls 2", "ftrace", f"hide_pid {hidden}",
                 f"unlink_pid {unlinked}", "tcp_seq", "keylogger", f"cred_pid {raised}"):
        rootkit.command(f"plant {line}")
    assert set(rootkit.planted()) == {"hide", "syscalls", "ftrace", "hide_pid", "unlink_pid",
                                      "tcp_seq", "keylogger", "cred_pid"}
    assert TABLE_MARK in kill_result(vm, SIG_TABLE)
    assert FTRACE_MARK in kill_result(vm, SIG_FTRACE)
    assert MODULE not in run(vm, "cat /proc/modules; ls /sys/module")
    # the planted processes end while planted: the kernel's exit path must cope
    run(vm, f"renice 1 -u {USER}; kill {unlinked} {raised}; sleep 0.5")
    rootkit.undo("all")
    assert rootkit.planted() == {}
    vm.rmmod(MODULE)
    run(vm, f"! test -e {CONTROL} && ! test -e /sys/module/{MODULE}")
    assert NO_PROCESS in kill_result(vm, SIG_TABLE)
    assert NO_PROCESS in kill_result(vm, SIG_FTRACE)
    vm.exec(f"kill {hidden}")

    with Rootkit.load(vm, hide=2, syscalls=2, ftrace=1, tcp_seq=1, keylogger=1) as again:
        assert MODULE not in run(vm, "cat /proc/modules; ls /sys/module")
        assert TABLE_MARK in kill_result(vm, SIG_TABLE)
        assert FTRACE_MARK in kill_result(vm, SIG_FTRACE)
        log = again.new_log()
    # leaving the block undid all, unloaded the module and checked the log since the load
    assert MODULE not in run(vm, "cat /proc/modules")
    assert not kernel_trouble(rootkit.new_log() + log)
