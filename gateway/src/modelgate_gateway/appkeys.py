"""Typed application keys, declared in one place (aiohttp ``AppKey``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .appstate import GatewayState

STATE: web.AppKey[GatewayState] = web.AppKey("modelgate_state")
