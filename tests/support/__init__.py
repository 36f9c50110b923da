"""Helpers the test suites share: free ports, real service processes, fresh databases."""
