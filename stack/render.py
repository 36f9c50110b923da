"""What the user sees: the status table, the progress of `stack up` and failure reports."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["UpRenderer", "line_printer", "status_table"]

MARKS = {
    "healthy": "[green]✔[/]",
    "running": "[green]✔[/]",
    "completed": "[green]✔[/]",
    "adopted": "[green]✔[/]",
    "external": "[green]✔[/]",
    "failed": "[red]✘[/]",
    "skipped": "[yellow]-[/]",
}


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def port_text(svc: dict[str, Any]) -> str:
    if svc.get("port") is None:
        return ""
    if svc.get("adopted"):
        return f"{svc['port']} (adopted)"
    if svc.get("moved"):
        return f"{svc['port']} (asked {svc['asked_port']})"
    return str(svc["port"])


def status_table(status: dict[str, Any]) -> Table:
    title = f"stack {status.get('phase', '?')}  ({status.get('stack_file', '')})"
    table = Table(title=title, title_justify="left")
    for col in (
        "service",
        "state",
        "pid",
        "port",
        "url",
        "health",
        "restarts",
        "uptime",
        "last exit",
    ):
        table.add_column(col)
    for name, svc in status.get("services", {}).items():
        state = svc.get("state", "")
        if svc.get("variant"):
            name = f"{name} [dim]({svc['variant']})[/]"
        health = svc.get("health") or ""
        style = (
            "green"
            if state in ("healthy", "running", "adopted", "external", "completed")
            else "yellow"
        )
        if state in ("failed", "skipped") or state.startswith("unknown"):
            style = "red"
        table.add_row(
            name,
            f"[{style}]{escape(state)}[/]",
            str(svc.get("pid") or ""),
            port_text(svc),
            svc.get("url") or "",
            escape(health),
            str(svc.get("restarts", 0)),
            _uptime(svc.get("uptime")),
            escape(svc.get("last_exit") or ""),
        )
    return table


class UpRenderer:
    """Turns the supervisor's reports into lines on the terminal while `stack up` waits."""

    def __init__(self, console: Console | None = None, live: bool = False) -> None:
        self.console = console or Console(stderr=False, highlight=False)
        self.live = live  # attached (--foreground): show the table as soon as all are up
        self._last_pct: dict[str, int] = {}
        self._shown: dict[str, str] = {}
        self.result: dict[str, Any] | None = None

    def __call__(self, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        c = self.console
        if t == "note":
            c.print(f"[bold]•[/] {escape(msg['text'])}", soft_wrap=True)
        elif t == "state":
            state, reason = msg["state"], msg.get("reason") or ""
            # stopping is the way down, not news; a failure is said once, in the report
            quiet = ("pending", "stopped", "stopping", "failed")
            if state in quiet or self._shown.get(msg["service"]) == state:
                return
            self._shown[msg["service"]] = state
            mark = MARKS.get(state, "[cyan]…[/]")
            extra = f" - {escape(reason)}" if reason and state not in ("healthy", "running") else ""
            c.print(f"{mark} {msg['service']}: {state}{extra}", soft_wrap=True)
        elif t == "progress":
            self._progress(msg)
        elif t == "stopped":
            if self.result is None:  # stopped (stack down, Ctrl-C) before everything was up
                self.result = msg
        elif t in ("ready", "failed", "running", "error"):
            self.result = msg
            if t == "ready" and self.live:
                c.print(status_table(msg["status"]))
                c.print("[dim]Ctrl-C stops every service[/]")

    def _progress(self, msg: dict[str, Any]) -> None:
        total, done = msg.get("total") or 0, msg.get("completed") or 0
        pct = int(100 * done / total) if total else -1
        key = f"{msg['service']}:{msg['status']}"
        # a line per 10% is a progress bar that also reads well in a log file
        if pct == -1 and key in self._last_pct:
            return
        if pct != -1 and pct < self._last_pct.get(key, -10) + 10 and pct != 100:
            return
        self._last_pct[key] = pct
        bar = "" if pct < 0 else f" [{'#' * (pct // 5)}{'.' * (20 - pct // 5)}] {pct}%"
        c = self.console
        c.print(f"[cyan]↓[/] {msg['service']}: {escape(msg['status'])}{escape(bar)}")

    def failure(self, msg: dict[str, Any]) -> None:
        c = self.console
        c.print(f"[red bold]✘ {msg['service']} failed:[/] {escape(msg['why'])}")
        if msg.get("skipped"):
            c.print(f"  not started: {', '.join(msg['skipped'])}")
        if msg.get("log"):
            c.print(f"  last {len(msg['log'])} log lines of {msg['service']}:")
            for line in msg["log"]:
                c.print(f"  [dim]│[/] {escape(line)}", soft_wrap=True)
        if msg.get("hint"):
            c.print(f"  what to do: {escape(msg['hint'])}", soft_wrap=True)
        c.print("  everything this `stack up` started has been stopped.")


def line_printer() -> Any:
    """Coloured, prefixed service output for `--foreground`, with honcho's printer."""
    from honcho.colour import get_colours
    from honcho.printer import Message, Printer

    printer = Printer(sys.stdout, width=12)
    colours: dict[str, str] = {}
    palette = get_colours()

    def write(name: str, line: str) -> None:
        colour = colours.setdefault(name, next(palette))
        printer.write(Message("line", line + "\n", datetime.now(), name, colour))

    return write
