"""Scripted fake upstreams (OpenAI-compatible and Ollama-compatible) for tests and benchmarks."""
