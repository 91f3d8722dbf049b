"""Keys' and tenants' budgets (USD per window) and rate limits (RPM, TPM, concurrency).

Counters live in Redis so every replica enforces the same numbers: a request reserves its
estimate when admitted (one Lua script, one round trip) and is reconciled with its real usage when
it ends. Pure parts (:mod:`.windows`, :mod:`.policy`, :mod:`.estimates`, :mod:`.headers`) do no
I/O; :mod:`.ledger` talks to Redis; :mod:`.governor` is what the create handler calls.
See docs/governance.md for the rules and the overshoot bound.
"""
