"""End to end on the real guest over the host agent's shared-memory region: the same
`llview build` binaries print the same thing over `shm:` as over `tcp://` from one agent
serving both, and as the guest's own view (`llview vm exec`). tests/test_e2e_paths.py runs the
skeleton's tests on all four paths; this file checks the two host-agent transports against
each other, with the request counts they report."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers import agent_proc
from test_e2e import guest_out, guest_processes, llview_build, parse_text_tasks, run_ids

from llview.agent_cli import AgentProcess
from llview.paths import REPO

pytestmark = pytest.mark.guest

STATS = re.compile(r"llview: (\d+) requests, \d+ bytes sent, \d+ bytes received, "
                   r"(\d+) pages fetched")


@pytest.fixture(scope="module")
def agent(guest, key_file):
    agent_proc.build()
    region = f"/dev/shm/llview-pytest-{os.getpid()}-e2e.shm"
    a = AgentProcess(["--ram", guest.ram_path, "--ram-size", str(guest.ram_size),
                      "--key-file", str(key_file)], binary=agent_proc.AGENT, shm=region)
    yield a
    a.stop()
    assert not Path(region).exists()


@pytest.fixture(scope="module")
def binaries(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("e2e-shm-ids")
    built = {}
    for name in ("os_version", "pslist"):
        result = llview_build(REPO / "ids_programs" / f"{name}.c", out / name)
        assert result.returncode == 0, result.stderr
        built[name] = out / name
    return built


def both(binary: Path, agent, key_file: Path, *extra: str) -> tuple[str, str]:
    tcp = run_ids(binary, f"tcp://127.0.0.1:{agent.port}", key_file, *extra).stdout
    shm = run_ids(binary, f"shm:{agent.shm}", key_file, *extra).stdout
    return tcp, shm


def test_os_version_same_over_shm_and_tcp(guest, agent, binaries, key_file):
    tcp, shm = both(binaries["os_version"], agent, key_file)
    assert shm == tcp
    assert shm.strip() == guest_out(guest, "cat /proc/version").strip()
    json_tcp, json_shm = both(binaries["os_version"], agent, key_file, "--json")
    assert json_shm == json_tcp and '"release"' in json_shm


def test_pslist_same_over_shm_and_tcp(guest, agent, binaries, key_file):
    before = guest_processes(guest)
    tcp, shm = both(binaries["pslist"], agent, key_file)
    after = guest_processes(guest)
    over_tcp, over_shm = parse_text_tasks(tcp), parse_text_tasks(shm)
    stable = {pid for pid, v in before.items() if after.get(pid) == v}
    assert len(stable) > 200
    assert {pid: over_shm.get(pid) for pid in stable} == {pid: over_tcp.get(pid)
                                                          for pid in stable}
    assert over_shm[1] == over_tcp[1]


def test_same_requests_over_shm_and_tcp(agent, binaries, key_file):
    """The transport changes nothing above it: same requests and pages for the same scan."""
    runs = [run_ids(binaries["os_version"], url, key_file, "--stats").stderr
            for url in (f"tcp://127.0.0.1:{agent.port}", f"shm:{agent.shm}")]
    counts = [STATS.search(err).groups() for err in runs]
    assert counts[0] == counts[1], counts
