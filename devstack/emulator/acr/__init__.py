"""The registry front: ACR's token exchange, /v2/ over docker-registry, /acr/v1/, one port per registry."""
