"""OpenAI object shapes (requests and responses) as pydantic models, in one place."""
