"""Sidecar mode: the operator injects a gateway next to any workload that asks for it.

:mod:`.template` holds what every sidecar looks like, :mod:`.mutation` decides about one pod as a
pure function, :mod:`.review` speaks ``AdmissionReview``, :mod:`.server` serves it over TLS with
the certificates of :mod:`.certs`, and :mod:`.webhook` keeps the webhook configuration's
``caBundle`` in sync. Nothing here renders or publishes routes.
"""
