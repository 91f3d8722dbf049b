"""A ConfigMap volume written the way the kubelet writes it, for tests of file reloading."""

from __future__ import annotations

import os
from pathlib import Path


class KubeletVolume:
    """A ConfigMap volume as the kubelet writes it: ``base.yaml -> ..data/base.yaml`` and
    ``..data -> ..<version>``; an update writes a new version directory, swaps ``..data``
    atomically (rename of a new symlink over it) and removes the old directory."""

    def __init__(self, root: Path, text: str) -> None:
        self.root = root
        self.version = 0
        self._write(text)
        (root / "base.yaml").symlink_to("..data/base.yaml")

    @property
    def path(self) -> str:
        return str(self.root / "base.yaml")

    def _write(self, text: str) -> None:
        old = self.root / f"..v{self.version}"
        self.version += 1
        new = self.root / f"..v{self.version}"
        new.mkdir()
        (new / "base.yaml").write_text(text)
        (self.root / "..data_tmp").symlink_to(new.name)
        os.replace(self.root / "..data_tmp", self.root / "..data")
        if old.exists():
            (old / "base.yaml").unlink()
            old.rmdir()

    def update(self, text: str) -> None:
        self._write(text)
