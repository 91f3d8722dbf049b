"""Pure: ModelRoutes, Secrets and the base document in, the gateway's config document out."""
