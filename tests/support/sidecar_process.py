"""A gateway process started exactly as the injected sidecar container is: the container's args
and env from the webhook's patch, ``$(VAR)`` expanded as the kubelet does, the image's entrypoint
(``modelgate-gateway``) as ``python -m modelgate_gateway``. The one difference from a pod: in-cluster
credentials (the projected token) come as a kubeconfig holding the pod ServiceAccount's token.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from envtest import terminate

ROOT = Path(__file__).resolve().parents[2]
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined variables are replaced, ``$$`` is a ``$``,
    undefined references stay as they are."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, value)


def container_env(container: dict[str, Any], pod: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it (values and fieldRefs the sidecar uses)."""
    fields = {"metadata.namespace": pod["metadata"]["namespace"], "metadata.name": pod["metadata"]["name"]}
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
        else:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


class SidecarProcess:
    def __init__(self, pod: dict[str, Any], kubeconfig: Path) -> None:
        (self.container,) = [c for c in pod["spec"]["initContainers"] if c["name"] == "modelgate"]
        env = container_env(self.container, pod)
        self.args = [sys.executable, "-m", "modelgate_gateway", *(expand(a, env) for a in self.container["args"])]
        self.env = {**os.environ, **env, "KUBECONFIG": str(kubeconfig)}
        self.env.pop("KUBERNETES_SERVICE_HOST", None)
        self.port = int(self.args[self.args.index("--port") + 1])
        self.admin_port = int(self.args[self.args.index("--metrics-port") + 1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout_path = Path(tempfile.mkstemp(prefix="modelgate-sidecar-out-")[1])
        self.stderr_path = Path(tempfile.mkstemp(prefix="modelgate-sidecar-err-")[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=out, stderr=err)

    def readyz(self) -> tuple[int, bytes] | None:
        """The admin port's /readyz (what the sidecar's probes call), or None when not listening."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=2) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def wait_ready(self, timeout: float = 30) -> float:
        """Poll /readyz as the startup probe does until it answers 200; the seconds since start."""
        assert self.proc is not None
        started = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sidecar exited with {self.proc.returncode}: {self.stderr()[-3000:]}")
            answer = self.readyz()
            if answer is not None and answer[0] == 200:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"sidecar not ready after {timeout}s: {answer}; {self.stderr()[-3000:]}")
            time.sleep(0.01)

    def memory_kib(self) -> dict[str, int]:
        """VmRSS, RssAnon and RssFile of the process, in KiB."""
        assert self.proc is not None
        found = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in {"VmRSS", "RssAnon", "RssFile"}:
                found[key] = int(value.split()[0])
        return found

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 15)
        for path in (self.stdout_path, self.stderr_path):
            path.unlink(missing_ok=True)
