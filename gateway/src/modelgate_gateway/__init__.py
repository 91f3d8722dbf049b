"""ModelGate data plane: an aiohttp gateway for the OpenAI Responses API.

Importing the package must stay cheap: it imports nothing; submodules import what they need.
"""
