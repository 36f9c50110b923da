"""One module of routes per resource, mounted under /v1."""
