"""Sovereign: the OpenAI-compatible inference proxy in front of Ollama and other runtimes."""

__version__ = "0.1.0"
