"""Fixtures of the state-store tests: a real redis-server per test."""

from redis_server import redis_server

__all__ = ["redis_server"]
