"""A long-lived IDS process under test: its stdout and stderr lines read as they come, JSON
records waited for one predicate at a time, SIGTERM to end it."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable


class RunningIds:
    def __init__(self, args: list[str], env: dict[str, str] | None = None,
                 timeout: float = 20) -> None:
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.timeout = timeout              # default wait for a record, and for the exit
        self.out: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self.seen: list[str] = []           # every stdout line until() consumed
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.out.put),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err.append),
                         daemon=True).start()

    @staticmethod
    def _pump(stream, put: Callable[[str], None]) -> None:
        for line in stream:
            put(line.rstrip("\n"))

    def until(self, predicate: Callable[[dict], bool], timeout: float | None = None
              ) -> list[dict]:
        """JSON records up to and including the first one `predicate` accepts."""
        timeout = self.timeout if timeout is None else timeout
        got: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not seen in {timeout} s; got {got}; stderr {self.err}")
            try:
                line = self.out.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            got.append(json.loads(line))
            if predicate(got[-1]):
                return got

    def next_scan(self, timeout: float | None = None) -> tuple[list[dict], dict]:
        """The records of the next scan and its scan record."""
        records = self.until(lambda rec: rec.get("kind") == "scan", timeout)
        return records[:-1], records[-1]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=self.timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
