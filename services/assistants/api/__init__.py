"""HTTP layer of the assistants service: dependencies and thin routes."""
