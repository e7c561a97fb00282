"""The detection suite (`llview check`, ids_programs/) on a real guest.

One guest of its own (in-kernel agent, ivshmem, confined workload, the profile's modules its
init loads), so techniques planted here never disturb the other tests' guests; the host-side
agent reads the same guest's RAM. A clean guest must give zero alerts from every program on all
four paths: false positives are bugs. Techniques planted by the test rootkit (tests/rootkit/)
must each be caught by the program meant for it, with the right evidence.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import agent_proc
from test_e2e import IDS_DIR, guest_out, llview_build, run_ids

from llview import kmod
from llview.agent_cli import AgentProcess
from llview.check import DETECTIONS
from llview.vm.qemu import VM

pytestmark = pytest.mark.guest

PATHS = ["host-tcp", "host-shm", "kernel-tcp", "kernel-shm"]
# Loaded from the profile on top of what the guest's init loads: two tty line disciplines
# (their ops point into module text, owner set) and a network driver.
PROFILE_MODULES = ("n_hdlc", "slip", "dummy")


def llview_check(url: str, key: Path, *extra: str, timeout: float = 600
                 ) -> tuple[int, list[dict], str]:
    done = subprocess.run([sys.executable, "-m", "llview.cli", "check", "--agent", url, "--key",
                           str(key), "--json", *extra], capture_output=True, text=True,
                          timeout=timeout)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, records, done.stderr


def alerts_of(records: list[dict], program: str | None = None) -> list[dict]:
    return [r for r in records if r.get("kind") == "alert"
            and (program is None or r.get("program") == program)]


@pytest.fixture(scope="module")
def detect_guest(kernel_profile, key_file: Path):
    vm = VM.start(f"pytest-detect-{os.getpid()}", kernel=str(kernel_profile.directory),
                  quiet=True, agent="kernel", key=key_file.read_bytes(), shm=True,
                  confine=True)
    try:
        for module in kmod.load_order(kernel_profile, PROFILE_MODULES):
            vm.insmod(module)
        yield vm
    finally:
        vm.stop(quiet=True)


@pytest.fixture(scope="module")
def detect_host_agent(detect_guest: VM, key_file: Path):
    agent_proc.build()
    region = Path(f"/dev/shm/llview-pytest-{os.getpid()}-detect.shm")
    region.unlink(missing_ok=True)
    agent = AgentProcess(["--ram", detect_guest.ram_path, "--ram-size",
                          str(detect_guest.ram_size), "--key-file", str(key_file)],
                         binary=agent_proc.AGENT, shm=str(region))
    try:
        yield agent
    finally:
        agent.stop()
        region.unlink(missing_ok=True)


def url_of(kind: str, vm: VM, host: AgentProcess) -> str:
    return {"host-tcp": f"tcp://127.0.0.1:{host.port}", "host-shm": f"shm:{host.shm}",
            "kernel-tcp": vm.tcp_url, "kernel-shm": vm.shm_url}[kind]


@pytest.mark.parametrize("kind", PATHS)
def test_clean_guest_gives_no_alert(kind, detect_guest, detect_host_agent, key_file):
    rc, records, stderr = llview_check(url_of(kind, detect_guest, detect_host_agent), key_file)
    programs = {r["program"]: r for r in records if r.get("kind") == "check"}
    assert set(programs) == set(DETECTIONS), stderr
    assert not alerts_of(records), alerts_of(records)
    assert all(p["status"] == "clean" for p in programs.values()), programs
    assert rc == 0, stderr
    # Every program really read the guest (each makes requests beyond its symbol look-up).
    assert all(p["requests"] >= 3 for p in programs.values()), programs


def test_lsmod_equals_proc_modules(detect_guest, detect_host_agent, key_file, tmp_path):
    binary = tmp_path / "lsmod"
    built = llview_build(IDS_DIR / "lsmod.c", binary)
    assert built.returncode == 0, built.stderr
    url = f"tcp://127.0.0.1:{detect_host_agent.port}"
    listed = [json.loads(line) for line in
              run_ids(binary, url, key_file, "--json").stdout.splitlines()]
    proc = {}
    for line in guest_out(detect_guest, "cat /proc/modules").splitlines():
        name, size, _refs, _deps, state, base = line.split()[:6]
        proc[name] = (int(size), state.lower(), int(base, 16))
    assert len(proc) >= 10, "the guest's init loads the profile's virtio and crypto modules"
    assert {"n_hdlc", "slip", "slhc", "dummy", "llview_agent"} <= set(proc)
    assert {m["name"]: (m["size"], m["state"], int(m["base"], 16)) for m in listed} == proc
    taints = {m["name"]: int(m["taints"], 16) for m in listed}
    assert taints["llview_agent"] & (1 << 12), "an out-of-tree module carries TAINT_OOT_MODULE"


SYMBOLS_IDS = r"""
#include <linux/kallsyms.h>
#include <linux/sched.h>
#include <asm/syscall.h>
#include <llview/ids.h>

extern struct list_head modules;

int main(void)
{
	unsigned long probe[] = {
		(unsigned long)sys_call_table[0], (unsigned long)sys_call_table[1] + 3,
		(unsigned long)&init_task + 100, (unsigned long)modules.next, 0x1000,
		(unsigned long)init_task.tasks.next,
	};
	unsigned int i;

	llview_symbolize_prefetch(probe, sizeof(probe) / sizeof(probe[0]));
	for (i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
		struct llview_symbol s;
		int found = !llview_symbolize(probe[i], &s);

		llview_record_begin("symbol");
		llview_field_uint("i", i);
		llview_field_int("found", found);
		llview_field_str("name", s.name);
		llview_field_uint("offset", found ? probe[i] - s.start : 0);
		llview_field_uint("size", s.size);
		llview_record_end();
		pr_info("%pS %ps\n", (void *)probe[i], (void *)probe[i]);
	}
	return 0;
}
"""


def test_both_agents_symbolize_alike(detect_guest, detect_host_agent, key_file, tmp_path):
    """SYMBOLIZE: the host agent (kallsyms decoded from RAM) and the module (the kernel's own
    kallsyms_lookup) must give the same answers: core-kernel symbols, nothing for the rest."""
    source = tmp_path / "symbols.c"
    source.write_text(SYMBOLS_IDS)
    built = llview_build(source, tmp_path / "symbols")
    assert built.returncode == 0, built.stderr
    outputs = {}
    for kind in ("host-tcp", "kernel-tcp"):
        url = url_of(kind, detect_guest, detect_host_agent)
        outputs[kind] = run_ids(tmp_path / "symbols", url, key_file, "--json").stdout
    assert outputs["host-tcp"] == outputs["kernel-tcp"]
    records = [json.loads(line) for line in outputs["host-tcp"].splitlines()]
    symbols = [r for r in records if r.get("kind") == "symbol"]
    assert symbols[0]["name"] == "__x64_sys_read" and symbols[0]["offset"] == 0
    assert symbols[1]["name"] == "__x64_sys_write" and symbols[1]["offset"] == 3
    assert symbols[2]["name"] == "init_task" and symbols[2]["offset"] == 100
    assert symbols[2]["size"] > 100
    assert not symbols[3]["found"], "a module's address is not the core kernel's"
    assert not symbols[4]["found"]
    assert not symbols[5]["found"], "a task_struct lives in the heap"
    logs = [r["log"] for r in records if "log" in r]
    assert logs[1].startswith("__x64_sys_write+0x3/0x") and logs[1].endswith(
        " __x64_sys_write")


def test_check_says_which_program_failed(key_file, tmp_path):
    """No agent: every program is an error (exit 2), each naming what went wrong."""
    rc, records, _ = llview_check("tcp://127.0.0.1:9", key_file, "--timeout", "2")
    assert rc == 2
    programs = [r for r in records if r.get("kind") == "check"]
    assert len(programs) == len(DETECTIONS)
    assert all(p["status"] == "error" and "127.0.0.1:9" in p["error"] for p in programs)


def test_check_rejects_unknown_program(key_file):
    done = subprocess.run([sys.executable, "-m", "llview.cli", "check", "--agent",
                           "tcp://127.0.0.1:9", "--key", str(key_file), "--only", "nosuch"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no program nosuch" in done.stderr


# ---- the planted rootkit: each technique caught by its program, with its evidence ----------

def spawn_sleeper(vm: VM) -> int:
    """A long sleep that outlives the exec call (reparented to init): a process to hide."""
    return int(guest_out(vm, "sleep 600 </dev/null >/dev/null 2>&1 & echo $!").split()[-1])


@pytest.fixture
def host_shm(detect_guest, detect_host_agent) -> str:
    return url_of("host-shm", detect_guest, detect_host_agent)


@pytest.fixture
def rootkit(detect_guest):
    """lvrootkit loaded with nothing planted; undone, unloaded and dmesg checked after."""
    from helpers.rootkit import Rootkit

    with Rootkit.load(detect_guest) as rk:
        yield rk


def check_alerts(url: str, key: Path, program: str) -> list[dict]:
    rc, records, stderr = llview_check(url, key, "--only", program)
    found = alerts_of(records, program)
    assert rc == (1 if found else 0), stderr + str(records)
    return found


def test_module_hidden_from_the_list(rootkit, host_shm, key_file):
    assert check_alerts(host_shm, key_file, "hidden_modules") == [], "loaded, not hidden"
    rootkit.plant("hide", 1)
    (alert,) = check_alerts(host_shm, key_file, "hidden_modules")
    assert alert["module"] == "lvrootkit" and alert["technique"] == "hidden_module"
    assert alert["missing_from"] == "list"
    assert alert["seen_in"] == "sysfs,mod_tree,memory"
    rootkit.undo("hide")
    assert check_alerts(host_shm, key_file, "hidden_modules") == []


def test_module_hidden_from_every_view_but_its_memory(rootkit, host_shm, key_file):
    rootkit.plant("hide", 2)
    (alert,) = check_alerts(host_shm, key_file, "hidden_modules")
    assert alert["module"] == "lvrootkit"
    assert (alert["missing_from"], alert["seen_in"]) == ("list,sysfs,mod_tree", "memory")
    rootkit.undo("hide")
    assert check_alerts(host_shm, key_file, "hidden_modules") == []


def test_syscall_table_hooks(rootkit, host_shm, key_file):
    rootkit.plant("syscalls", 1)
    alerts = {a["number"]: a for a in check_alerts(host_shm, key_file, "syscall_table")}
    assert set(alerts) == {62, 217}, alerts  # __NR_kill, __NR_getdents64 on x86-64
    assert alerts[62]["syscall"] == "sys_kill"
    assert alerts[62]["object"] == "sys_call_table[62]"
    assert alerts[217]["syscall"] == "sys_getdents64"
    for a in alerts.values():
        assert a["table"] == "sys_call_table" and a["target_module"] == "lvrootkit"
        assert a["target_owner"] == "module lvrootkit (text)"
        assert a["target_symbol"].endswith(" [lvrootkit]"), a
    # Hidden as well: the target is still named, from the module's carved struct module.
    rootkit.plant("hide", 2)
    alerts = check_alerts(host_shm, key_file, "syscall_table")
    assert {a["target_owner"] for a in alerts} == {"hidden module lvrootkit (text)"}
    rootkit.undo("hide")
    rootkit.undo("syscalls")
    assert check_alerts(host_shm, key_file, "syscall_table") == []


def test_rewritten_jumps_in_the_syscall_dispatch(rootkit, host_shm, key_file):
    """syscalls 2: also the rel32 of x64_sys_call's jumps to the two handlers, the hook that
    really diverts the syscalls on this kernel (the table is no longer used to dispatch)."""
    rootkit.plant("syscalls", 2)
    alerts = check_alerts(host_shm, key_file, "syscall_table")
    dispatch = {a["number"]: a for a in alerts if a["technique"] == "syscall_dispatch_hook"}
    table = {a["number"] for a in alerts if a["technique"] == "syscall_table_hook"}
    assert set(dispatch) == table == {62, 217}, alerts
    for a in dispatch.values():
        assert a["object"] == "x64_sys_call"
        jumps = a["jumps_into_modules"].split("; ")
        assert sorted(j.split(" -> ")[1] for j in jumps) == [
            "rk_sys_getdents64+0x0 [lvrootkit]", "rk_sys_kill+0x0 [lvrootkit]"], jumps
    assert dispatch[62]["expected_symbol"] == "__x64_sys_kill"
    rootkit.undo("syscalls")
    assert check_alerts(host_shm, key_file, "syscall_table") == []


def test_ftrace_hook_on_a_syscall(rootkit, host_shm, key_file):
    rootkit.plant("ftrace", 1)
    (alert,) = check_alerts(host_shm, key_file, "kernel_hooks")
    assert alert["technique"] == "ftrace_hook" and alert["callback_module"] == "lvrootkit"
    assert alert["filter"].split("+")[0] == "__x64_sys_kill", alert
    rootkit.undo("ftrace")
    assert check_alerts(host_shm, key_file, "kernel_hooks") == []


def test_proc_net_tcp_seq_op_and_keyboard_notifier(rootkit, host_shm, key_file):
    rootkit.plant("tcp_seq", 1)
    rootkit.plant("keylogger", 1)
    alerts = {a["technique"]: a for a in check_alerts(host_shm, key_file, "kernel_hooks")}
    assert set(alerts) == {"proc_net_seq_ops_hook", "keyboard_notifier"}, alerts
    assert alerts["proc_net_seq_ops_hook"]["hook"] == "tcp4_seq_ops.show"
    assert alerts["keyboard_notifier"]["hook"] == "keyboard_notifier_list[0]"
    assert {a["target_module"] for a in alerts.values()} == {"lvrootkit"}
    rootkit.undo("tcp_seq")
    rootkit.undo("keylogger")
    assert check_alerts(host_shm, key_file, "kernel_hooks") == []


def test_process_hidden_from_the_pid_table_and_from_the_task_list(rootkit, detect_guest,
                                                                   host_shm, key_file):
    gone_from_pids, gone_from_list = spawn_sleeper(detect_guest), spawn_sleeper(detect_guest)
    try:
        rootkit.plant("hide_pid", gone_from_pids)
        rootkit.plant("unlink_pid", gone_from_list)
        alerts = {a["pid"]: a for a in check_alerts(host_shm, key_file, "hidden_procs")}
        assert set(alerts) == {gone_from_pids, gone_from_list}, alerts
        assert (alerts[gone_from_pids]["task_list"], alerts[gone_from_pids]["pid_table"]) == (
            "yes", "no")
        assert (alerts[gone_from_list]["task_list"], alerts[gone_from_list]["pid_table"]) == (
            "no", "yes")
        assert {a["comm"] for a in alerts.values()} == {"sleep"}
        assert alerts[gone_from_list]["object"] == f"pid {gone_from_list} (sleep)"
        rootkit.undo("hide_pid")
        rootkit.undo("unlink_pid")
        assert check_alerts(host_shm, key_file, "hidden_procs") == []
    finally:
        detect_guest.exec(f"kill {gone_from_pids} {gone_from_list}")


@pytest.mark.parametrize("planted, program, technique, evidence", [
    ("flag_pid", "hidden_procs", "task_flags", {"undefined_bits": "0x1000000"}),
    ("cred_pid", "creds", "init_cred", {"uid": 0, "euid": 0}),
])
def test_one_process_marked(planted, program, technique, evidence, rootkit, detect_guest,
                            host_shm, key_file):
    """A PF_* bit the kernel leaves unused (the getdents-filter marker), or init_cred."""
    pid = spawn_sleeper(detect_guest)
    try:
        rootkit.plant(planted, pid)
        (alert,) = check_alerts(host_shm, key_file, program)
        assert (alert["technique"], alert["pid"], alert["comm"]) == (technique, pid, "sleep")
        assert {k: alert[k] for k in evidence} == evidence
        rootkit.undo(planted)
        assert check_alerts(host_shm, key_file, program) == []
    finally:
        detect_guest.exec(f"kill {pid}")


@pytest.mark.parametrize("kind", ["host-tcp", "kernel-tcp", "kernel-shm"])
def test_every_technique_at_once_on_every_agent(kind, rootkit, detect_guest, detect_host_agent,
                                                key_file):
    url = url_of(kind, detect_guest, detect_host_agent)
    pids = [spawn_sleeper(detect_guest) for _ in range(4)]
    try:
        for technique, arg in (("syscalls", 1), ("ftrace", 1), ("tcp_seq", 1), ("keylogger", 1),
                               ("hide_pid", pids[0]), ("unlink_pid", pids[1]),
                               ("cred_pid", pids[2]), ("flag_pid", pids[3]), ("hide", 2)):
            rootkit.plant(technique, arg)
        rc, records, stderr = llview_check(url, key_file)
        assert rc == 1, stderr
        by_program = {p: alerts_of(records, p) for p in DETECTIONS}
        assert [a["module"] for a in by_program["hidden_modules"]] == ["lvrootkit"]
        assert sorted(a["number"] for a in by_program["syscall_table"]) == [62, 217]
        assert sorted((a["pid"], a["technique"]) for a in by_program["hidden_procs"]) == sorted(
            [(pids[0], "hidden_process"), (pids[1], "hidden_process"),
             (pids[3], "task_flags")])
        assert {a["technique"] for a in by_program["kernel_hooks"]} == {
            "ftrace_hook", "proc_net_seq_ops_hook", "keyboard_notifier"}
        assert {a["target_owner"] if "target_owner" in a else a["callback_owner"]
                for a in by_program["kernel_hooks"]} == {"hidden module lvrootkit (text)"}
        assert [a["pid"] for a in by_program["creds"]] == [pids[2]]
        rootkit.undo("all")
        rc, records, stderr = llview_check(url, key_file)
        assert (rc, alerts_of(records)) == (0, []), stderr
    finally:
        detect_guest.exec("kill " + " ".join(map(str, pids)))


def test_check_on_a_dump_of_the_planted_guest(rootkit, detect_guest, key_file, tmp_path):
    """Where Volatility runs (a memory dump) llview check runs too: the dump keeps what was
    planted when it was taken, while the live guest has moved on."""
    rootkit.plant("hide", 1)
    rootkit.plant("syscalls", 1)
    dump = tmp_path / "planted.elf"
    detect_guest.dump(dump)
    rootkit.undo("all")
    agent = AgentProcess(["--image", str(dump), "--key-file", str(key_file)],
                         binary=agent_proc.AGENT)
    try:
        rc, records, stderr = llview_check(f"tcp://127.0.0.1:{agent.port}", key_file)
    finally:
        agent.stop()
        dump.unlink()
    assert rc == 1, stderr
    assert [a["module"] for a in alerts_of(records, "hidden_modules")] == ["lvrootkit"]
    assert sorted(a["number"] for a in alerts_of(records, "syscall_table")) == [62, 217]
    assert {a["program"] for a in alerts_of(records)} == {"hidden_modules", "syscall_table"}
