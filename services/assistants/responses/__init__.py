"""The Responses and Conversations APIs over the assistants store and run executor."""
