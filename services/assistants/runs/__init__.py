"""Run execution: claiming queued runs, calling the upstream, relaying events as SSE."""
