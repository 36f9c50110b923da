"""What runs and responses share of the tools this server runs itself (file_search)."""
