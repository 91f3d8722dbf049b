"""Domain errors of the operator; plain exceptions, translated into conditions at the edge.

A spec the user must fix is an :class:`InvalidRoute`; an API problem worth retrying is a
:class:`KubeApiError` (:class:`KubeNotFound` for a 404). Nothing here imports kopf or kubernetes,
so the reconcile loop handles the client's errors without importing the client.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every error the operator raises on purpose."""


class InvalidRoute(OperatorError):
    """A ModelRoute whose spec cannot be rendered, as data: where (``path``, e.g.
    ``spec.deployments[0].baseUrl``), what is wrong (``problem``) and the Accepted condition's
    ``reason``. Code matches on these; ``message`` (``path: problem``) is for people."""

    def __init__(self, path: str, problem: str, reason: str = "InvalidSpec") -> None:
        self.path = path
        self.problem = problem
        self.reason = reason
        self.message = f"{path}: {problem}" if path else problem
        super().__init__(self.message)


class BaseConfigError(OperatorError):
    """The operator's base document is unreadable or invalid; nothing can be published."""


class KubeApiError(OperatorError):
    """Talking to the Kubernetes API failed in a way worth retrying (an HTTP error, a timeout,
    an unreachable API server). ``delay``: the first retry's delay in seconds when the error
    knows better than the operator's setting; repeated failures back off from there."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class KubeNotFound(KubeApiError):
    """The object asked for does not exist (HTTP 404). A call that expects absence handles it;
    anywhere else it is retried like any other API failure."""
