"""ModelGateKey: API keys that teams own in their namespaces, rendered into the gateway's config.

:mod:`.resources` parses the objects, :mod:`.rendering` turns them (with their Secrets) into
``spec.auth.keys`` entries next to the base config's keys, :mod:`.status` builds their status,
:mod:`.spend` reads what they spent from the gateway's Redis counters, :mod:`.client` talks to the
API server and :mod:`.reconciling` runs all that inside the operator's reconcile pass.
"""
