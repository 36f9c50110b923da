"""Tests of sovereign, the OpenAI-compatible inference proxy."""
