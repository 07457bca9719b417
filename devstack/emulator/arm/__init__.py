"""ARM providers: resource groups and locks, registries, ACR Tasks runs (handlers → domain → records)."""
