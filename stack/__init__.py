"""The stack manager: reads stack.yaml, starts, supervises and stops the services."""
