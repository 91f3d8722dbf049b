"""Domain errors of the operator; plain exceptions, translated into conditions at the edge.

A spec the user must fix is an :class:`InvalidRoute`; an API problem worth retrying is a
:class:`PublishError`. Nothing here imports kopf or kubernetes.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every error the operator raises on purpose."""


class InvalidRoute(OperatorError):
    """A ModelRoute whose spec cannot be rendered; the message tells the user what to fix."""

    def __init__(self, message: str, reason: str = "InvalidSpec") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class BaseConfigError(OperatorError):
    """The operator's base document is unreadable or invalid; nothing can be published."""


class PublishError(OperatorError):
    """Talking to the Kubernetes API failed in a way worth retrying (an HTTP error, a timeout,
    an unreachable API server). ``delay``: the first retry's delay in seconds when the error
    knows better than the operator's setting; repeated failures back off from there."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay
