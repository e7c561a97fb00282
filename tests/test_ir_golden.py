"""Golden IR tests in the style of LLVM's lit: one tests/ir/<behaviour>.ll per behaviour.

Each file carries its own commands and expectations:
    ; RUN: llview-opt --passes=guest_loads %s | FileCheck %s
    ; RUN: not llview-opt --passes=store_guard %s 2>&1 | FileCheck %s --check-prefix=DIAG
    ; CHECK: ...        (checked by the real FileCheck of LLVM 19)
    ; ERROR: ids.c:7:5: error: store to guest memory
`llview-opt` is llview.pipeline's CLI, run in-process. `not` expects failure; `2>&1` passes
the diagnostics (stderr) to FileCheck too. ERROR lines (each a substring of one diagnostic,
one line per diagnostic, none left over) need a `not llview-opt` RUN line: the file must fail
with exactly those diagnostics.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from llview.pipeline import cli

IR_DIR = Path(__file__).parent / "ir"
FILECHECK = "/usr/lib/llvm-19/bin/FileCheck"
CASES = sorted(IR_DIR.glob("*.ll"))


def _directives(text: str, tag: str) -> list[str]:
    prefix = f"; {tag}:"
    return [ln[len(prefix):].strip() for ln in text.splitlines() if ln.startswith(prefix)]


def _run_line(command: str, path: Path) -> None:
    stages = [s.strip() for s in command.split("|")]
    words = shlex.split(stages[0].replace("%s", str(path)))
    expect_failure = words[0] == "not"
    if expect_failure:
        words = words[1:]
    merge_stderr = "2>&1" in words
    words = [w for w in words if w != "2>&1"]
    assert words[0] == "llview-opt", f"RUN line must start with [not] llview-opt: {command}"
    status, out, err = cli(words[1:])
    if expect_failure:
        assert status != 0, f"expected llview-opt to fail on {path.name}; it printed:\n{out}"
    else:
        assert status == 0, f"llview-opt failed on {path.name}:\n{err}"
    if len(stages) < 2:
        return
    check = shlex.split(stages[1].replace("%s", str(path)))
    assert check[0] == "FileCheck", f"second stage must be FileCheck: {command}"
    done = subprocess.run([FILECHECK, *check[1:]], input=out + (err if merge_stderr else ""),
                          capture_output=True, text=True)
    assert done.returncode == 0, f"FileCheck failed for {path.name}:\n{done.stderr}"


def _check_errors(expected: list[str], run_lines: list[str], path: Path) -> None:
    failing = [r for r in run_lines if r.startswith("not llview-opt")]
    assert failing, f"{path.name}: ERROR lines need a 'not llview-opt' RUN line"
    words = shlex.split(failing[0].split("|")[0].replace("%s", str(path)))[2:]
    status, _out, err = cli([w for w in words if w != "2>&1"])
    assert status != 0
    diagnostics = err.splitlines()
    unmatched = list(diagnostics)
    for want in expected:
        hit = next((d for d in unmatched if want in d), None)
        assert hit is not None, (f"{path.name}: no diagnostic contains {want!r}; got:\n"
                                 + "\n".join(diagnostics))
        unmatched.remove(hit)
    assert not unmatched, f"{path.name}: unexpected diagnostics:\n" + "\n".join(unmatched)


def test_golden_files_exist() -> None:
    assert len(CASES) >= 15, "tests/ir should hold one .ll file per behaviour"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    text = path.read_text()
    run_lines = _directives(text, "RUN")
    assert run_lines, f"{path.name} has no RUN line"
    for command in run_lines:
        _run_line(command, path)
    errors = _directives(text, "ERROR")
    if errors:
        _check_errors(errors, run_lines, path)
