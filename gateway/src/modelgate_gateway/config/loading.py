"""Parse, version-dispatch, validate and serialise config documents.

Every way into a :class:`GatewayConfig` goes through :func:`parse_config`, so the gateway and
the operator apply the same rules. Errors come back as one :class:`ConfigError` listing all
problems with their paths.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .checksum import canonical_json, spec_checksum
from .v1alpha1 import API_VERSION, GatewayConfig
from .validation import ConfigIssue, semantic_issues

SUPPORTED_API_VERSIONS = (API_VERSION,)


class ConfigError(ValueError):
    """A config document that cannot be served.

    ``errors`` lists each problem as text with its path; ``issues`` holds the same problems as
    :class:`ConfigIssue` values (a plain-text error becomes an issue without a path).
    """

    def __init__(self, errors: Sequence[str | ConfigIssue], source: str = "config") -> None:
        self.issues = tuple(e if isinstance(e, ConfigIssue) else ConfigIssue((), e) for e in errors)
        self.errors = [str(issue) for issue in self.issues]
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.errors))


def _loc(loc: tuple[int | str, ...]) -> tuple[str | int, ...]:
    # Union branch names (``EnvRef``, ``list[...]``) are noise to a reader and to a caller.
    return tuple(p for p in loc if isinstance(p, int)
                 or (p not in {"EnvRef", "FileRef", "SecretKeyRef"} and "[" not in str(p)))


def parse_document(raw: bytes | str, fmt: str = "auto") -> Any:
    """Bytes to plain data. ``fmt`` is ``json``, ``yaml`` or ``auto`` (YAML is a JSON superset)."""
    try:
        if fmt == "json":
            return json.loads(raw)
        return yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError([f"<root>: not valid {fmt if fmt != 'auto' else 'YAML/JSON'}: {exc}"]) from exc


def validate_data(data: Any, source: str = "config") -> GatewayConfig:
    """Plain data to a validated config, checking version, schema, checksum and cross-field rules."""
    if not isinstance(data, dict):
        raise ConfigError(["<root>: expected a mapping"], source)
    version = data.get("apiVersion")
    if version not in SUPPORTED_API_VERSIONS:
        raise ConfigError(
            [f"apiVersion: {version!r} is not supported (supported: {', '.join(SUPPORTED_API_VERSIONS)})"],
            source,
        )
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([ConfigIssue(_loc(err["loc"]) or ("<root>",), err["msg"])
                           for err in exc.errors(include_url=False)], source) from None
    errors = semantic_issues(config)
    declared = config.metadata.checksum
    if declared is not None and declared != spec_checksum(data.get("spec")):
        errors.insert(0, ConfigIssue(("metadata", "checksum"), f"{declared} does not match the spec"))
    if errors:
        raise ConfigError(errors, source)
    return config


def parse_config(raw: bytes | str, fmt: str = "auto", source: str = "config") -> GatewayConfig:
    """Bytes of a document to a validated :class:`GatewayConfig`."""
    try:
        data = parse_document(raw, fmt)
    except ConfigError as exc:
        raise ConfigError(exc.errors, source) from None
    return validate_data(data, source)


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a config file (JSON or YAML)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"<root>: cannot read {path}: {exc.strerror}"], str(path)) from None
    return parse_config(raw, "json" if path.suffix == ".json" else "yaml", str(path))


def config_to_data(config: GatewayConfig) -> dict[str, Any]:
    """The document as plain data with camelCase keys, unset defaults left out."""
    data: dict[str, Any] = config.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return data


def dump_config(config: GatewayConfig, with_checksum: bool = True) -> bytes:
    """Canonical JSON of a document; ``metadata.checksum`` filled in when asked."""
    data = config_to_data(config)
    if with_checksum:
        data.setdefault("metadata", {})["checksum"] = spec_checksum(data["spec"])
    return canonical_json(data)
