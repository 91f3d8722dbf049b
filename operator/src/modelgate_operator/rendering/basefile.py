"""The operator's base document on disk, re-read when the file changes (no restart needed).

Why a stamp: the chart mounts the base as a ConfigMap volume, and the kubelet refreshes it in
place within about a minute by writing a new timestamped directory and atomically swapping the
``..data`` symlink; ``base.yaml`` is a symlink through ``..data``. Opening the path follows the
symlinks, so ``fstat`` of the opened file sees the new file (another inode, mtime and often
size) right after the swap, and an in-place edit (outside Kubernetes) changes mtime and size.
Each reconcile pass therefore costs one ``open`` + ``fstat``; only a new stamp reads the bytes,
and only new bytes (by sha256) are parsed and validated.

Why keep the last good version: a broken edit must not take the published config down. A
version that cannot be read, parsed or validated is logged once at error level (by its sha256,
so the 30 s resync does not repeat it) and ignored; the last good base keeps being rendered
until the file changes again. ``on_refused`` hears about each refused version once too (the
operator posts a Warning Event on the base ConfigMap: a log line alone goes unnoticed). Pure file
I/O and validation: no kopf, no Kubernetes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from modelgate_gateway.config import GatewayConfig, parse_config

from ..errors import BaseConfigError

logger = logging.getLogger("modelgate_operator")


@dataclass(frozen=True, slots=True)
class _Stamp:
    """What ``fstat`` says about the file behind the path; equal stamps skip the read."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


def _short(digest: str) -> str:
    return f"sha256:{digest[:12]}"


class BaseFile:
    """The base document at ``path``: the last good version and whether the file moved on.

    ``config`` is what the reconciler renders with. :meth:`load` (start-up) raises, since
    there is no good version to fall back to; :meth:`refresh` (every pass) never does.
    """

    def __init__(self, path: str, on_refused: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.on_refused = on_refused
        """Called with the message of each refused version, once per version (as it is logged)."""
        self.config: GatewayConfig | None = None
        self.digest: str | None = None
        """sha256 of the bytes ``config`` was parsed from."""
        self.rejected: str | None = None
        """sha256 (or the read error) of the version last refused, until a good one is current."""
        self._stamp: _Stamp | None = None
        self._previous: tuple[GatewayConfig | None, str | None] | None = None
        """The good version before the last reload, until a render proves the new one."""

    def _read(self) -> tuple[_Stamp, bytes | None]:
        """The file's stamp, and its bytes unless the stamp is the one already seen."""
        with open(self.path, "rb") as handle:
            st = os.fstat(handle.fileno())
            stamp = _Stamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            return stamp, (None if stamp == self._stamp else handle.read())

    def _parse(self, raw: bytes) -> GatewayConfig:
        fmt = "json" if self.path.endswith(".json") else "yaml"
        try:
            return parse_config(raw, fmt, self.path)
        except ValueError as exc:
            raise BaseConfigError(f"MODELGATE_OPERATOR_BASE_CONFIG: {exc}") from exc

    def load(self) -> GatewayConfig:
        """Start-up: read and validate, or raise :class:`BaseConfigError` (nothing to keep)."""
        try:
            stamp, raw = self._read()
        except OSError as exc:
            raise BaseConfigError(f"MODELGATE_OPERATOR_BASE_CONFIG: cannot read {self.path}: "
                                  f"{exc.strerror}") from exc
        assert raw is not None  # no stamp yet, so the bytes were read
        self.config = self._parse(raw)
        self.digest = hashlib.sha256(raw).hexdigest()
        self._stamp = stamp
        return self.config

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when a new valid version became ``config``.

        An unreadable or invalid version keeps the last good one, logged once per version.
        """
        try:
            stamp, raw = self._read()
        except OSError as exc:  # e.g. the volume is being torn down; keep what works
            self._stamp = None  # read again next pass, whatever the stamp
            self._refuse(f"unreadable:{exc.strerror}", f"cannot read {self.path}: {exc.strerror}")
            return False
        if raw is None:
            return False
        self._stamp = stamp
        digest = hashlib.sha256(raw).hexdigest()
        if digest == self.digest:  # same bytes (a touch, or a broken edit reverted)
            self._recovered()
            return False
        if digest == self.rejected:
            return False
        try:
            config = self._parse(raw)
        except BaseConfigError as exc:
            self._refuse(digest, str(exc))
            return False
        self._previous = (self.config, self.digest)
        self.config, self.digest = config, digest
        logger.info("base config %s changed: reloaded %s", self.path, _short(digest))
        self._recovered()
        return True

    def reject_current(self, error: str) -> bool:
        """A freshly reloaded version that validates alone but not with the routes: go back.

        Returns False when there is nothing to go back to (the version already rendered once,
        or it is the start-up one); the caller then reports the error as before.
        """
        if self._previous is None or self.digest is None:
            return False
        self._refuse(self.digest, error)
        self.config, self.digest = self._previous
        self._previous = None
        return True

    def confirm(self) -> None:
        """The current version rendered: it is now the one to fall back to."""
        self._previous = None

    def _refuse(self, version: str, error: str) -> None:
        if version != self.rejected:
            kept = _short(self.digest) if self.digest else "none"
            logger.error("base config %s not applied, keeping the last good one (%s): %s",
                         self.path, kept, error)
            if self.on_refused is not None:
                self.on_refused(f"base config not applied, keeping the last good one ({kept}): {error}")
        self.rejected = version

    def _recovered(self) -> None:
        if self.rejected is not None:
            logger.info("base config %s is valid again (%s)", self.path,
                        _short(self.digest or ""))
            self.rejected = None
