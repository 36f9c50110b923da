"""Uploaded files -> text -> chunks -> embeddings -> the search index, in the background."""
