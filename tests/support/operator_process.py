"""``modelgate-operator`` as a real child process against a cluster (kubeconfig), and stopping it.

The process is what a pod runs: settings from the environment, kopf with peering and its
liveness endpoint. Output goes to a file (an undrained pipe would block the process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from envtest import terminate

ROOT = Path(__file__).resolve().parents[2]


class OperatorProcess:
    def __init__(self, kubeconfig: Path, env: dict[str, str]) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), **env}
        self.env.pop("KUBERNETES_SERVICE_HOST", None)  # never in-cluster
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="modelgate-operator-")[1])

    def start(self) -> None:
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "modelgate_operator"], cwd=ROOT, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthz(self, url: str, timeout: float = 30) -> float:
        """Poll the liveness endpoint until it answers 200; returns the seconds it took."""
        assert self.proc is not None
        started = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{url} did not answer within {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15) -> str:
        """SIGTERM (kopf stops gracefully), SIGKILL after ``timeout``; returns the log."""
        if self.proc is not None:
            terminate(self.proc, timeout)
        text = self.log()
        self.log_path.unlink(missing_ok=True)
        return text
