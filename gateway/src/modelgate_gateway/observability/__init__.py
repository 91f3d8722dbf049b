"""What the gateway measures and charges: usage as billed, prices, accounting, background follow-up, traces.

Pure modules here (:mod:`.billing`, :mod:`.accounting` 's cost function) import no aiohttp, so budgets and
tests can call them directly.
"""
