"""A tiny service for the stack tests: answers GET /health, and can be told to be slow, crash,
refuse to stop, or leave a grandchild behind."""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int)
    p.add_argument("--fd", type=int)
    p.add_argument("--ready-after", type=float, default=0.0)
    p.add_argument("--crash-after", type=float)
    p.add_argument("--crash-once", help="crash only if this file does not exist yet (made)")
    p.add_argument("--crash-when", help="crash once this file appears (and remove it)")
    p.add_argument("--exit-code", type=int, default=1)
    p.add_argument("--no-serve", action="store_true")
    p.add_argument("--grandchild", action="store_true")
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--starts", help="append the start time to this file")
    p.add_argument("--say", default="")
    p.add_argument("--sick-after", type=float, help="answer /health with 500 after this long")
    a = p.parse_args()
    name = os.environ.get("SVC_NAME", "svc")
    born = time.monotonic()
    if a.starts:
        with open(a.starts, "a") as fh:
            fh.write(f"{time.time()}\n")
    print(f"{name} starting {a.say}", flush=True)
    if a.ignore_term:
        signal.signal(signal.SIGTERM, lambda *_: print(f"{name} ignores TERM", flush=True))
    if a.grandchild:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    if a.crash_once:
        if os.path.exists(a.crash_once):
            a.crash_after = None
        else:
            open(a.crash_once, "w").close()
    if a.crash_when:

        def crash_when() -> None:
            while not os.path.exists(a.crash_when):
                time.sleep(0.05)
            os.unlink(a.crash_when)
            print(f"{name} told to crash", flush=True)
            os._exit(a.exit_code)

        threading.Thread(target=crash_when, daemon=True).start()
    if a.crash_after is not None:

        def crash() -> None:
            time.sleep(a.crash_after)
            print(f"{name} crashing with {a.exit_code}", flush=True)
            os._exit(a.exit_code)

        threading.Thread(target=crash, daemon=True).start()
    if a.no_serve or (a.port is None and a.fd is None):
        while True:
            time.sleep(1)
    time.sleep(a.ready_after)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            sick = a.sick_after is not None and time.monotonic() - born > a.sick_after
            self.send_response((500 if sick else 200) if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, *args: object) -> None:
            pass

    if a.fd is not None:
        server = http.server.HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = socket.socket(fileno=a.fd)
    else:
        server = http.server.HTTPServer(("127.0.0.1", a.port), Handler)
    print(f"{name} serving on {server.socket.getsockname()[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
