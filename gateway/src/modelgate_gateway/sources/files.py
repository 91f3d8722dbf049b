"""Config from a file on disk and secrets from a directory, polled for changes.

Works for a plain file edited by hand and for a mounted ConfigMap/Secret, which kubelet updates by
an atomic symlink swap (so whole volumes are mounted, never subPath). Polling by content rather
than by inotify survives both, and costs one small read per period.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from .base import ConfigSnapshot

log = logging.getLogger("modelgate.gateway.sources")

_MAX_FILE_BYTES = 8 * 1024 * 1024  # far above the 1 MiB ConfigMap limit; bigger is a mistake
_MAX_SECRET_FILES = 4096


def read_secrets_dir(directory: Path) -> dict[str, bytes]:
    """Every visible regular file of a directory (Kubernetes' ``..data`` entries are hidden)."""
    secrets: dict[str, bytes] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return secrets
    for entry in entries[:_MAX_SECRET_FILES]:
        if entry.name.startswith(".") or not entry.is_file():
            continue
        try:
            with entry.open("rb") as fh:
                secrets[entry.name] = fh.read(_MAX_FILE_BYTES)
        except OSError:
            continue
    return secrets


class FileSource:
    def __init__(self, path: str | Path, secrets_dir: str | Path | None = None,
                 interval_seconds: float = 2.0) -> None:
        self.path = Path(path)
        self.secrets_dir = Path(secrets_dir) if secrets_dir else None
        self.interval = interval_seconds
        self._missing_logged = False
        self._woken: asyncio.Event | None = None

    def _read(self) -> tuple[bytes, dict[str, bytes]] | None:
        try:
            with self.path.open("rb") as fh:
                document = fh.read(_MAX_FILE_BYTES)
        except OSError as exc:
            if not self._missing_logged:
                log.warning("config file %s not readable yet (%s); waiting for it", self.path, exc.strerror)
                self._missing_logged = True
            return None
        self._missing_logged = False
        secrets = read_secrets_dir(self.secrets_dir) if self.secrets_dir else {}
        return document, secrets

    @staticmethod
    def _fingerprint(document: bytes, secrets: dict[str, bytes]) -> bytes:
        digest = hashlib.sha256(document)
        for name, value in secrets.items():
            digest.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(value).digest())
        return digest.digest()

    async def snapshots(self) -> AsyncIterator[ConfigSnapshot]:
        last: bytes | None = None
        fmt = "json" if self.path.suffix == ".json" else "yaml"
        while True:  # runs for the life of the process; one read per interval
            found = await asyncio.to_thread(self._read)
            if found is not None:
                document, secrets = found
                fingerprint = self._fingerprint(document, secrets)
                if fingerprint != last:
                    last = fingerprint
                    yield ConfigSnapshot(document=document, fmt=fmt, origin=str(self.path),  # type: ignore[arg-type]
                                         secrets=secrets, base_dir=str(self.path.parent))
            await self._pause()

    async def _pause(self) -> None:
        """One poll interval, cut short by :meth:`wake`."""
        woken = self._woken = self._woken or asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), self.interval)
        woken.clear()

    def wake(self) -> None:
        if self._woken is not None:
            self._woken.set()

    async def report_applied(self, checksum: str) -> None:
        return None
