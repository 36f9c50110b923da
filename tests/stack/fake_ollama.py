"""A scripted Ollama for the tests: `ollama serve` answering /api/tags and a streamed /api/pull."""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS: list[str] = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"models": [{"name": m, "model": m} for m in MODELS]}).encode()
        self.send_response(200 if self.path == "/api/tags" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Connection", "close")
        self.end_headers()
        steps = [{"status": "pulling manifest"}]
        steps += [
            {"status": "pulling abc123", "total": 1000, "completed": c} for c in range(0, 1001, 250)
        ]
        steps += [{"status": "success"}]
        for step in steps:
            self.wfile.write(json.dumps(step).encode() + b"\n")
            self.wfile.flush()
            time.sleep(0.02)
        MODELS.append(req["model"])
        self.close_connection = True


def main() -> None:
    if sys.argv[1:] != ["serve"]:
        raise SystemExit("usage: ollama serve")
    host, _, port = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434").rpartition(":")
    print(f"fake ollama listening on {host}:{port}", flush=True)
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main()
