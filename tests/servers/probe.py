"""A liveness probe from a process of its own."""

from __future__ import annotations

import subprocess

_PROBE = """
import sys, time, urllib.request
while True:
    started = time.perf_counter()
    urllib.request.urlopen(sys.argv[1], timeout=60).read()
    print(time.perf_counter() - started, flush=True)
    time.sleep(float(sys.argv[2]))
"""


class LivenessProbe:
    """GET `url` every `every_s` from a process of its own, as an orchestrator's liveness probe
    does: its answer times are not slowed by whatever the caller's own process is doing."""

    def __init__(self, url: str, every_s: float = 0.1) -> None:
        import sys

        self.process = subprocess.Popen(
            [sys.executable, "-c", _PROBE, url, str(every_s)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.first = float(self.process.stdout.readline())  # probing has begun

    def stop(self) -> list[float]:
        """Stop probing: the answer times, in seconds."""
        self.process.terminate()
        output, _ = self.process.communicate(timeout=30)
        return [self.first, *(float(line) for line in output.split() if line)]
