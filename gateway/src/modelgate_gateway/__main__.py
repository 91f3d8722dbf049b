"""``python -m modelgate_gateway``: same as the ``modelgate-gateway`` command."""

from .main import entrypoint

entrypoint()
