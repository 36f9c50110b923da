"""The embedded runtime: llama.cpp serving the bundled small GGUF model, OpenAI-compatible."""
