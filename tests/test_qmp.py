"""QMP dumps without a guest: VM.dump() against a fake QEMU monitor on a unix socket, which
checks the dump-guest-memory arguments and answers query-dump as QEMU does (active, then
completed or failed), with asynchronous events in between. And the vmcoreinfo device on the
QEMU command line only when asked for."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from llview.paths import LlviewError
from llview.vm import qemu
from llview.vm.qemu import VM


def make_vm(tmp_path: Path, **kw) -> VM:
    fields = dict(name="qmp", pid=0, state_dir=str(tmp_path), ram_path="/dev/shm/x.ram",
                  ram_size=512 << 20, host_port=4321, console_log="c", exec_socket="e",
                  qmp_socket=str(tmp_path / "qmp.sock"), kernel_release="r", kernel_dir="d",
                  accel="tcg", tasks=9)
    fields.update(kw)
    return VM(**fields)


class FakeMonitor(threading.Thread):
    """Serves one QMP client: greeting, qmp_capabilities, then scripted replies."""

    def __init__(self, path: str, statuses: list[str], dump_error: str | None = None):
        super().__init__(daemon=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.statuses = statuses
        self.dump_error = dump_error
        self.commands: list[dict] = []
        self.start()

    def run(self) -> None:
        conn, _ = self.server.accept()
        with conn, conn.makefile("rwb") as f:
            def send(obj: dict) -> None:
                f.write(json.dumps(obj).encode() + b"\r\n")
                f.flush()
            send({"QMP": {"version": {}, "capabilities": ["oob"]}})
            for line in f:
                cmd = json.loads(line)
                self.commands.append(cmd)
                name = cmd["execute"]
                if name == "dump-guest-memory":
                    if self.dump_error:
                        send({"error": {"class": "GenericError", "desc": self.dump_error}})
                        continue
                    Path(cmd["arguments"]["protocol"][len("file:"):]).write_bytes(b"\x7fELF")
                    send({"event": "STOP", "timestamp": {}})
                    send({"return": {}})
                elif name == "query-dump":
                    status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
                    send({"event": "DUMP_COMPLETED", "data": {}} if status == "completed"
                         else {"event": "RESUME"})
                    send({"return": {"status": status, "completed": 1, "total": 2}})
                else:
                    send({"return": {}})


@pytest.fixture
def vm(tmp_path, monkeypatch) -> VM:
    monkeypatch.setattr(VM, "alive", lambda self: True)
    return make_vm(tmp_path)


def test_dump_waits_for_completion(vm, tmp_path):
    monitor = FakeMonitor(vm.qmp_socket, ["active", "active", "completed"])
    result = vm.dump(tmp_path / "out.elf")
    assert (result.path, result.size) == (str(tmp_path / "out.elf"), 4)
    names = [c["execute"] for c in monitor.commands]
    assert names == ["qmp_capabilities", "dump-guest-memory", "query-dump", "query-dump",
                     "query-dump"]
    assert monitor.commands[1]["arguments"] == {
        "paging": False, "protocol": f"file:{tmp_path / 'out.elf'}", "detach": True}


def test_failed_dump_is_an_error(vm, tmp_path):
    FakeMonitor(vm.qmp_socket, ["active", "failed"])
    with pytest.raises(LlviewError, match="QEMU could not dump VM qmp"):
        vm.dump(tmp_path / "out.elf")


def test_qemu_error_reply_is_shown(vm, tmp_path):
    FakeMonitor(vm.qmp_socket, ["completed"], dump_error="dump: failed to save memory")
    with pytest.raises(LlviewError, match="QMP dump-guest-memory: dump: failed to save memory"):
        vm.dump(tmp_path / "out.elf")


def test_dump_that_never_completes_times_out(vm, tmp_path):
    FakeMonitor(vm.qmp_socket, ["active"])
    with pytest.raises(LlviewError, match=r"took more than 0 s \(1 of 2 bytes\)"):
        vm.dump(tmp_path / "out.elf", timeout=0.2)


def test_existing_file_and_missing_monitor(vm, tmp_path):
    (tmp_path / "there.elf").write_bytes(b"keep")
    with pytest.raises(LlviewError, match="exists"):
        vm.dump(tmp_path / "there.elf")
    assert (tmp_path / "there.elf").read_bytes() == b"keep"
    with pytest.raises(LlviewError, match="cannot talk QMP"):
        vm.dump(tmp_path / "new.elf")  # nothing listens on qmp.sock


def test_dump_of_a_stopped_vm(tmp_path):
    with pytest.raises(LlviewError, match="not running"):
        make_vm(tmp_path).dump(tmp_path / "out.elf")


def test_vmcoreinfo_device_only_when_asked(tmp_path):
    assert "vmcoreinfo" not in qemu.VM._qemu_command(make_vm(tmp_path), "v", "i")
    cmd = make_vm(tmp_path, vmcoreinfo=True)._qemu_command("v", "i")
    assert cmd[cmd.index("vmcoreinfo") - 1] == "-device"
