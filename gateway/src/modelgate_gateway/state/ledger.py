"""The ledger of background responses not yet counted, shared by all replicas through Redis.

Each background response the gateway creates gets an entry (what to charge it to) until it is
counted. Counting is three steps so it happens exactly once whoever sees the end first (the
creator's follow-up, a client's poll on any replica, a replica that took over after a crash):

- ``claim``: take the right to count it (``SET NX`` with a lease), only while the entry exists
  and it was not counted yet;
- ``record``: atomically, only while the claim is still ours, mark it counted and remove the
  entry; it returns the entry, and the caller then charges it (nothing in between can fail);
- ``release``: give a claim back without counting (the answer was not final after all).

A replica also holds an *owner* lease on the entries it follows up and renews it while it does;
entries whose owner lease lapsed (the replica died or restarted) are adopted by whoever sweeps
first. :class:`MemoryLedger` gives the same guarantees within one process (no Redis configured).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .store import StateStoreError

if TYPE_CHECKING:  # importing redis costs ~5 MiB: only a gateway with a store pays it
    import redis.asyncio as aioredis

PREFIX = "modelgate:bg:"
PENDING = PREFIX + "pending"
"""Sorted set of entry keys, scored by their deadline (unix seconds)."""
DONE_TTL_SECONDS = 7 * 86400
"""How long a counted response stays marked counted (late polls must not count it again)."""


class BackgroundLedger(Protocol):
    async def add(self, key: str, entry: bytes, deadline: float, owner: str, lease: float) -> None:
        """Store an entry owned by ``owner`` (idempotent: an existing entry is kept)."""
        ...

    async def renew(self, key: str, owner: str, lease: float) -> bool:
        """Keep following ``key``: False when it is counted, gone, or another replica took it over."""
        ...

    async def adopt(self, owner: str, lease: float, limit: int) -> list[tuple[str, bytes]]:
        """Entries whose owner lease lapsed, now owned by ``owner`` (at most ``limit``)."""
        ...

    async def claim(self, key: str, token: str, lease: float) -> bool: ...

    async def record(self, key: str, token: str) -> bytes | None:
        """Commit a claim: the entry, now counted; None when the claim was lost meanwhile."""
        ...

    async def release(self, key: str, token: str) -> None: ...

    async def disown(self, key: str, owner: str) -> None:
        """Stop following ``key`` (shutdown): another replica adopts it at its next sweep."""
        ...


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


_RENEW = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"""
_ADOPT = """
local keys = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for _, key in ipairs(keys) do
  if #out >= tonumber(ARGV[4]) * 2 then break end
  local entry = redis.call('GET', ARGV[1] .. 'entry:' .. key)
  if not entry then
    redis.call('ZREM', KEYS[1], key)
  elseif redis.call('SET', ARGV[1] .. 'owner:' .. key, ARGV[2], 'NX', 'PX', ARGV[3]) then
    table.insert(out, key)
    table.insert(out, entry)
  end
end
return out
"""
_CLAIM = """
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
_RECORD = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local entry = redis.call('GET', KEYS[1])
if not entry then return false end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[3])
return entry
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLedger:
    """The ledger in the Redis of ``spec.state``; every call is bounded by the client's socket timeouts."""

    def __init__(self, client: aioredis.Redis) -> None:
        from redis.exceptions import RedisError

        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)
        self._client = client
        self._renew = client.register_script(_RENEW)
        self._adopt = client.register_script(_ADOPT)
        self._claim = client.register_script(_CLAIM)
        self._record = client.register_script(_RECORD)
        self._release = client.register_script(_RELEASE)

    @staticmethod
    def _keys(key: str) -> tuple[str, str, str, str]:
        return PREFIX + "entry:" + key, PREFIX + "claim:" + key, PREFIX + "done:" + key, PREFIX + "owner:" + key

    async def add(self, key: str, entry: bytes, deadline: float, owner: str, lease: float) -> None:
        entry_key, _, _, owner_key = self._keys(key)
        ttl = max(1, int(deadline - time.time()) + DONE_TTL_SECONDS)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(entry_key, entry, nx=True, ex=ttl)
                pipe.zadd(PENDING, {key: deadline}, nx=True)
                pipe.set(owner_key, owner, nx=True, px=_ms(lease))
                await pipe.execute()
        except self._errors as exc:
            raise StateStoreError(f"redis: storing background response failed: {exc}") from exc

    async def renew(self, key: str, owner: str, lease: float) -> bool:
        entry_key, _, _, owner_key = self._keys(key)
        return bool(await self._run(self._renew, [entry_key, owner_key], [owner, _ms(lease)]))

    async def adopt(self, owner: str, lease: float, limit: int) -> list[tuple[str, bytes]]:
        flat = await self._run(self._adopt, [PENDING], [PREFIX, owner, _ms(lease), limit])
        pairs = list(flat) if isinstance(flat, list) else []
        return [(_text(pairs[i]), _raw(pairs[i + 1])) for i in range(0, len(pairs) - 1, 2)]

    async def claim(self, key: str, token: str, lease: float) -> bool:
        entry_key, claim_key, done_key, _ = self._keys(key)
        return bool(await self._run(self._claim, [entry_key, claim_key, done_key], [token, _ms(lease)]))

    async def record(self, key: str, token: str) -> bytes | None:
        entry_key, claim_key, done_key, owner_key = self._keys(key)
        found = await self._run(
            self._record, [entry_key, claim_key, done_key, owner_key, PENDING], [token, DONE_TTL_SECONDS, key]
        )
        return _raw(found) if found else None

    async def release(self, key: str, token: str) -> None:
        await self._run(self._release, [self._keys(key)[1]], [token])

    async def disown(self, key: str, owner: str) -> None:
        await self._run(self._release, [self._keys(key)[3]], [owner])

    async def _run(self, script: object, keys: list[str], args: list[object]) -> object:
        try:
            return await script(keys=keys, args=args)  # type: ignore[operator]
        except self._errors as exc:
            raise StateStoreError(f"redis: background ledger call failed: {exc}") from exc


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _raw(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class MemoryLedger:
    """The same ledger within one process, for a gateway without Redis (one replica)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, bytes] = {}
        self._owners: dict[str, tuple[str, float]] = {}
        self._claims: dict[str, tuple[str, float]] = {}
        self._done: dict[str, float] = {}

    def _now(self) -> float:
        return self._clock()

    def _held(self, table: dict[str, tuple[str, float]], key: str) -> str | None:
        held = table.get(key)
        if held is None or held[1] <= self._now():
            table.pop(key, None)
            return None
        return held[0]

    async def add(self, key: str, entry: bytes, deadline: float, owner: str, lease: float) -> None:
        if key in self._done:
            return
        self._entries.setdefault(key, entry)
        if self._held(self._owners, key) is None:
            self._owners[key] = (owner, self._now() + lease)

    async def renew(self, key: str, owner: str, lease: float) -> bool:
        if key not in self._entries or self._held(self._owners, key) not in (None, owner):
            return False
        self._owners[key] = (owner, self._now() + lease)
        return True

    async def adopt(self, owner: str, lease: float, limit: int) -> list[tuple[str, bytes]]:
        adopted: list[tuple[str, bytes]] = []
        for key, entry in list(self._entries.items()):
            if len(adopted) >= limit:
                break
            if self._held(self._owners, key) is None:
                self._owners[key] = (owner, self._now() + lease)
                adopted.append((key, entry))
        return adopted

    async def claim(self, key: str, token: str, lease: float) -> bool:
        if key in self._done or key not in self._entries or self._held(self._claims, key) is not None:
            return False
        self._claims[key] = (token, self._now() + lease)
        return True

    async def record(self, key: str, token: str) -> bytes | None:
        if self._held(self._claims, key) != token or key not in self._entries:
            return None
        self._done[key] = self._now()
        if len(self._done) > 100_000:  # bounded: forget the oldest marks
            for old in list(self._done)[:10_000]:
                del self._done[old]
        self._claims.pop(key, None)
        self._owners.pop(key, None)
        return self._entries.pop(key)

    async def release(self, key: str, token: str) -> None:
        if self._held(self._claims, key) == token:
            del self._claims[key]

    async def disown(self, key: str, owner: str) -> None:
        if self._held(self._owners, key) == owner:
            del self._owners[key]
