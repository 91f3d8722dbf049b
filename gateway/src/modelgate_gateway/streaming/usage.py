"""Read billed usage out of a Responses object (see :mod:`..observability.billing`)."""

from __future__ import annotations

from ..observability.billing import billed_usage as usage_of

__all__ = ["usage_of"]
