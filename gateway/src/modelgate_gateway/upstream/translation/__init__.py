"""Translators between the client's API and an upstream's API, one module family per pair.

Modules are named ``<client>_<upstream>`` (``responses_chatcompletions``). They are pure: no
aiohttp, no I/O, no clock; the executor feeds them parsed bodies and chunks and writes what they
return. See ``docs/translation.md``.
"""
