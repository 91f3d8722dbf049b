"""Config from a file on disk and secrets from a directory, polled for changes.

Works for a plain file edited by hand and for a mounted ConfigMap/Secret, which kubelet updates by
an atomic symlink swap (so whole volumes are mounted, never subPath). Polling by content rather
than by inotify survives both, and costs one small read per period. The file may also be a
config index (``index.json`` of a sharded config, mounted with its shards in one directory):
then the parts it names are read next to it and only a complete set matching the index by hash
is delivered (:mod:`modelgate_gateway.config.sharding`); the kubelet refreshes each ConfigMap of
a projected volume on its own schedule, so a mixed set is normal for a while and waited out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from ..config.sharding import ConfigIndex, Inconsistent, IndexUnreadable, assemble, looks_like_index
from .base import ConfigSnapshot

log = logging.getLogger("modelgate.gateway.sources")

_MAX_FILE_BYTES = 8 * 1024 * 1024  # far above the 1 MiB ConfigMap limit; bigger is a mistake
_MAX_SECRET_FILES = 100_000  # one key per keyed deployment: tens of thousands of routes
KEYS_GRACE_SECONDS = 150.0
"""How long a ``secretKey`` the config needs may be missing from the secrets directory before the
document counts as rejected: the kubelet refreshes the config and the secrets volumes separately,
each within its sync period plus its cache TTL (about a minute each by default)."""


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


class SecretsDir:
    """A secrets directory, read again only when it may have changed.

    A kubelet-mounted volume changes only by swapping its ``..data`` symlink, so while that
    link's target stays the same the last read stands (tens of thousands of key files are not
    re-read every poll). A plain directory has no such link and is read every time.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._version: str | None = None
        self._secrets: dict[str, bytes] = {}

    def read(self) -> dict[str, bytes]:
        try:
            version: str | None = os.readlink(self.directory / "..data")
        except OSError:
            version = None
        if version is None or version != self._version:
            self._secrets = read_secrets_dir(self.directory)
            self._version = version
        return self._secrets


def _read(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(_MAX_FILE_BYTES)


class FileSource:
    def __init__(self, path: str | Path, secrets_dir: str | Path | None = None, interval_seconds: float = 2.0) -> None:
        self.path = Path(path)
        self.secrets = SecretsDir(Path(secrets_dir)) if secrets_dir else None
        self.interval = interval_seconds
        self._missing_logged = False
        self._waiting: str | None = None
        self._assembled: tuple[bytes, bytes] | None = None
        self._woken: asyncio.Event | None = None

    def _assemble(self, raw_index: bytes) -> bytes | None:
        """The document a config index names, from the files next to it; None until complete."""
        if self._assembled is not None and self._assembled[0] == raw_index:
            return self._assembled[1]  # parts are checked against the same index: unchanged
        try:
            index = ConfigIndex.parse(raw_index)
            parts: dict[str, bytes | None] = {}
            for part in index.parts:
                try:
                    parts[part.key] = _read(self.path.parent / part.key)
                except OSError:
                    parts[part.key] = None
            document = assemble(index, parts)
        except (IndexUnreadable, Inconsistent) as exc:
            if str(exc) != self._waiting:
                log.info(
                    "waiting for a complete config set in %s (keeping the last good one): %s", self.path.parent, exc
                )
                self._waiting = str(exc)
            return None
        self._waiting = None
        self._assembled = (raw_index, document)
        return document

    def _read(self) -> tuple[bytes, dict[str, bytes]] | None:
        try:
            document = _read(self.path)
        except OSError as exc:
            if not self._missing_logged:
                log.warning("config file %s not readable yet (%s); waiting for it", self.path, exc.strerror)
                self._missing_logged = True
            return None
        self._missing_logged = False
        if looks_like_index(document):
            assembled = self._assemble(document)
            if assembled is None:
                return None
            document = assembled
        secrets = self.secrets.read() if self.secrets else {}
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
        grace = KEYS_GRACE_SECONDS if self.secrets is not None else 0.0
        while True:  # runs for the life of the process; one read per interval
            found = await asyncio.to_thread(self._read)
            if found is not None:
                document, secrets = found
                fingerprint = self._fingerprint(document, secrets)
                if fingerprint != last:
                    last = fingerprint
                    yield ConfigSnapshot(
                        document=document,
                        fmt=fmt,  # type: ignore[arg-type]
                        origin=str(self.path),
                        secrets=secrets,
                        base_dir=str(self.path.parent),
                        keys_grace_seconds=grace,
                    )
            await self._pause()

    async def _pause(self) -> None:
        """One poll interval, cut short by :meth:`wake`.

        ``asyncio.timeout``, not ``wait_for``: on Python 3.11, ``wait_for`` returns normally when its
        task is cancelled just as the wait ends (the wake and the shutdown at once), swallowing the
        cancellation, and this loop would then poll on after its reloader was told to stop.
        """
        woken = self._woken = self._woken or asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.interval):
                await woken.wait()
        woken.clear()

    def wake(self) -> None:
        if self._woken is not None:
            self._woken.set()

    async def report_applied(self, checksum: str) -> None:
        return None
