"""The assistants service's domain layer: what the routes call, free of HTTP."""
