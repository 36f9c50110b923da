"""Sovereign's HTTP routes: thin handlers over chat, models, embeddings and health."""
