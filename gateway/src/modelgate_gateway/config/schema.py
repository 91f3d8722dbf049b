"""JSON Schema export of the config document: ``python -m modelgate_gateway.config.schema``.

The checked-in copy under ``schemas/`` is compared with this output by a test, so the models
and the published schema cannot drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .v1alpha1 import API_VERSION, GatewayConfig

SCHEMA_DIR = Path(__file__).parent / "schemas"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the current document version, keys in camelCase."""
    schema = GatewayConfig.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://modelgate.dev/schemas/{API_VERSION.split('/')[-1]}.json"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
