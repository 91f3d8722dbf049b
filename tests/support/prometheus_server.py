"""A real Prometheus server on loopback for end-to-end tests.

``prometheus_launcher(tmp_path)`` is a context manager yielding ``launch(targets)``, which starts
the Debian ``prometheus`` binary with a temp TSDB, a generated config scraping the given
``host:port`` targets every second, and waits for ``/-/ready``. Everything it started is
SIGTERMed on exit. A missing binary fails the test: it is installed by ``.ci/run``, so its
absence is a broken environment, not a reason to skip. Queries poll with a deadline because the
first scrape lands only after ~6 s (service-discovery throttle), never after a fixed sleep.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

Result = list[dict[str, Any]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def query_once(self, promql: str, at: float | None = None) -> Result:
        """One instant query; raises on an API error (a bad expression fails loudly)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"query {promql!r} failed: {exc.read().decode()}") from exc
        assert body["status"] == "success", body
        result: Result = body["data"]["result"]
        return result

    def query(
        self,
        promql: str,
        until: Callable[[Result], bool] = bool,
        timeout: float = 20.0,
    ) -> Result:
        """Poll until ``until(result)`` holds; at the deadline, fail showing the last result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query_once(promql)
            if until(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql!r} never satisfied the condition; last: {result}")
            time.sleep(0.2)  # polling interval of a deadline-bounded wait, not a fixed wait

    def scalar(self, promql: str) -> float:
        """Value of a query expected to return exactly one series."""
        result = self.query_once(promql)
        assert len(result) == 1, (promql, result)
        return float(result[0]["value"][1])


def _write_config(path: Path, targets: list[str], scrape_interval: str) -> None:
    # JSON is valid YAML, so the config needs no YAML writer.
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {"job_name": "modelgate", "static_configs": [{"targets": targets}]},
        ],
    }
    path.write_text(json.dumps(config))


def _wait_ready(server: PrometheusServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"prometheus not ready; log:\n{server.log_path.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM: Prometheus shuts down cleanly
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def prometheus_launcher(
    workdir: Path, scrape_interval: str = "1s"
) -> Iterator[Callable[[list[str]], PrometheusServer]]:
    """Yield ``launch(targets)``; every server launched is stopped on exit."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the prometheus binary is not installed (apt-get install prometheus)")
    started: list[PrometheusServer] = []

    def launch(targets: list[str]) -> PrometheusServer:
        index = len(started)
        base = workdir / f"prometheus-{index}"
        base.mkdir(parents=True)
        config = base / "prometheus.yml"
        _write_config(config, targets, scrape_interval)
        port = _free_port()
        log_path = base / "prometheus.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={base / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = PrometheusServer(f"http://127.0.0.1:{port}", process, log_path)
        started.append(server)
        _wait_ready(server, timeout=15)
        return server

    try:
        yield launch
    finally:
        for server in started:
            _stop(server.process)
