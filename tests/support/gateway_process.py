"""Run ``modelgate-gateway`` as a real child process on loopback ports, and stop it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> int:
    """First of ``count`` consecutive free loopback ports (workers use metrics_port + i)."""
    for _ in range(200):  # bounded search
        first = free_port()
        try:
            socks = []
            for offset in range(count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", first + offset))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no run of free ports found")


class GatewayProcess:
    def __init__(self, config: Path | str | None, *extra: str, env: dict[str, str] | None = None,
                 metrics_ports: int = 1, open_files: int | None = None) -> None:
        """``config``: the config file, or None when ``extra`` names another source (--kube-configmap).

        ``open_files``: RLIMIT_NOFILE (soft and hard) of the process, to run it short of descriptors.
        """
        self.open_files = open_files
        self.port = free_port()
        self.metrics_port = free_ports(metrics_ports)
        source = ["--config", str(config)] if config is not None else []
        self.args = [sys.executable, "-m", "modelgate_gateway", *source,
                     "--port", str(self.port), "--metrics-port", str(self.metrics_port), *extra]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout_path = Path(tempfile.mkstemp(prefix="modelgate-stdout-")[1])
        self.stderr_path = Path(tempfile.mkstemp(prefix="modelgate-stderr-")[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 15) -> float:
        """Start and wait until /readyz answers 200; returns the seconds it took."""
        started = time.monotonic()
        # Files, not pipes: the request log goes to stdout and an undrained pipe would block it.
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            args = self.args
            if self.open_files:  # the shell's ulimit, then exec: the pid is the gateway's
                args = ["/bin/sh", "-c", 'ulimit -n "$0" && exec "$@"', str(self.open_files), *args]
            self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out, stderr=err)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited early: {self.stderr_path.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.02)
        raise TimeoutError("gateway did not become ready")

    def log_lines(self) -> list[dict[str, Any]]:
        """The request log (stdout) so far: one JSON object per line."""
        return [json.loads(line) for line in self.stdout_path.read_bytes().splitlines() if line.strip()]

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="backslashreplace")

    def scrape(self, port: int | None = None) -> str:
        """``GET /metrics`` (of ``port``, default the first worker's); fails unless it is a 200."""
        url = f"http://127.0.0.1:{port or self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
            return str(resp.read().decode())

    def open_descriptors(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def wait_for_port(self, port: int, path: str = "/metrics", timeout: float = 15) -> None:
        """Poll another listener of the process (a worker's metrics port) until it answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> tuple[bytes, bytes]:
        if self.proc is None:
            return b"", b""
        if self.proc.returncode is not None and not self.stdout_path.exists():
            return b"", b""  # already stopped and collected
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.wait(5)
        out, err = self.stdout_path.read_bytes(), self.stderr_path.read_bytes()
        self.stdout_path.unlink(missing_ok=True)
        self.stderr_path.unlink(missing_ok=True)
        return out, err
