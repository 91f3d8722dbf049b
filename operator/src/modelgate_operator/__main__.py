"""``python -m modelgate_operator``: same as the ``modelgate-operator`` console script."""

from .main import entrypoint

entrypoint()
