"""The two FastAPI services of the stack: the assistants state layer and the sovereign proxy."""
