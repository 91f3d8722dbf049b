"""A real ``redis-server`` on a free loopback port, without persistence, for state tests.

``redis_server`` (fixture) starts one per test in ``tmp_path`` and stops it at teardown. A missing
binary fails the test: CI installs Redis from Debian's packages, so its absence is a broken
machine, not a reason to skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

START_DEADLINE_SECONDS = 10.0
_PORT_ATTEMPTS = 3  # a freshly probed free port can be taken before redis binds it


@dataclass(frozen=True)
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def redis_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if found is None:
        pytest.fail("redis-server is not installed (Debian package redis-server); install it to run the state tests")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers_ping(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False
    finally:
        client.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _start(binary: str, workdir: Path) -> RedisServer | None:
    port = _free_port()
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        "--logfile",
        str(workdir / "redis.log"),
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None  # most likely the port was taken in between; the caller retries
        if _answers_ping(port):
            return RedisServer(port=port, process=process)
        time.sleep(0.02)  # poll interval, not a wait for a fixed duration
    _stop(process)
    pytest.fail(f"redis-server did not answer PING within {START_DEADLINE_SECONDS}s")


@contextmanager
def running_redis_server(workdir: Path) -> Iterator[RedisServer]:
    binary = redis_binary()
    for _ in range(_PORT_ATTEMPTS):
        server = _start(binary, workdir)
        if server is not None:
            break
    else:
        pytest.fail("redis-server exited at start-up on every attempt")
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis_server(tmp_path) as server:
        yield server
