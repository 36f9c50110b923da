"""The assistants service: an OpenAI Assistants API v2 state layer over SQLAlchemy."""

__version__ = "0.1.0"
