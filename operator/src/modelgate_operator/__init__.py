"""ModelGate control plane: a kopf operator rendering ModelRoutes into the gateway config."""
