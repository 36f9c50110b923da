"""Port resolution (keep, adopt, move), variant choice and reference resolution."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stack.config import Service, StackConfig, load
from stack.plan import make_plan, replan
from stack.ports import PortRequest, PortsExhausted, bind_listener, port_is_free, resolve_ports
from tests.support.processes import free_port


class FakeSock:
    def __init__(self, port: int) -> None:
        self.port, self.closed = port, False

    def close(self) -> None:
        self.closed = True


def fake_bind(taken: set[int]):  # type: ignore[no-untyped-def]
    return lambda host, port: None if port in taken else FakeSock(port)


async def test_ports_keep_move_adopt_without_duplicates() -> None:
    answering = {8080}

    async def answers(name: str, port: int) -> bool:
        return port in answering

    reqs = [
        PortRequest("runtime", "127.0.0.1", 8080, adopt=True, keep_socket=False),
        PortRequest("api", "127.0.0.1", 8000, adopt=False, keep_socket=True),
        PortRequest("ui", "127.0.0.1", 8000, adopt=False, keep_socket=False),  # same ask as api
        PortRequest("proxy", "127.0.0.1", 8090, adopt=True, keep_socket=False),  # taken, silent
    ]
    plans = await resolve_ports(reqs, answers, fake_bind({8080, 8000, 8090, 8091}))
    assert plans["runtime"].adopted and plans["runtime"].port == 8080
    assert (plans["api"].asked, plans["api"].port, plans["api"].moved) == (8000, 8001, True)
    assert isinstance(plans["api"].sock, FakeSock) and not plans["api"].sock.closed
    assert plans["ui"].port == 8002 and plans["ui"].sock is None  # not the one api got
    assert plans["proxy"].port == 8092 and not plans["proxy"].adopted


async def test_ports_exhausted_closes_what_it_bound() -> None:
    async def never(name: str, port: int) -> bool:
        return False

    bound: list[FakeSock] = []

    def bind(host: str, port: int) -> FakeSock | None:
        if port >= 9000:
            return None
        bound.append(FakeSock(port))
        return bound[-1]

    reqs = [
        PortRequest("a", "127.0.0.1", 8999, adopt=False, keep_socket=True),
        PortRequest("b", "127.0.0.1", 9000, adopt=False, keep_socket=True),
    ]
    with pytest.raises(PortsExhausted, match="b: no free port"):
        await resolve_ports(reqs, never, bind)  # type: ignore[arg-type]
    assert bound and all(s.closed for s in bound)


def test_real_sockets() -> None:
    port = free_port()
    sock = bind_listener("127.0.0.1", port)
    assert sock is not None and sock.get_inheritable()
    assert not port_is_free("127.0.0.1", port)
    assert bind_listener("127.0.0.1", port) is None
    sock.close()
    assert port_is_free("127.0.0.1", port)


RUNTIME = """
services:
  runtime:
    port: {rport}
    variants:
      - name: ollama
        when: {{installed: ollama}}
        adopt: true
        command: ollama serve
        probe: {{http: /api/tags}}
        vars: {{backend: ""}}
      - name: embedded
        command: embedded --port ${{self.port}}
        probe: {{http: /health}}
        note: a small CPU model
        vars: {{backend: "${{self.url}}/v1"}}
  api:
    command: api --fd ${{self.fd}}
    port: {aport}
    socket: inherit
    env:
      UPSTREAM: ${{services.runtime.url}}
      BACKEND: ${{services.runtime.vars.backend}}
    depends_on: {{runtime: {{condition: healthy}}}}
"""


def runtime_stack(tmp_path: Path) -> tuple[StackConfig, int, int]:
    """RUNTIME on two free ports: (config, runtime port, api port)."""
    rport, aport = free_port(), free_port()
    (tmp_path / "stack.yaml").write_text(RUNTIME.format(rport=rport, aport=aport))
    return load(tmp_path / "stack.yaml", environ={}), rport, aport


@contextmanager
def port_taken(port: int) -> Iterator[None]:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    try:
        yield
    finally:
        blocker.close()


async def test_plan_chooses_embedded_when_ollama_is_absent(tmp_path: Path) -> None:
    cfg, rport, aport = runtime_stack(tmp_path)

    async def silent(svc: Service, port: int | None) -> bool:
        return False

    with port_taken(aport):
        plan = await make_plan(cfg, installed=lambda exe: False, answers=silent)
    try:
        assert plan.choices["runtime"].variant == "embedded"
        note = plan.choices["runtime"].note
        assert note.startswith("runtime: embedded - a small CPU model")
        assert "[not used: ollama, `ollama` is not installed and nothing answers on" in note
        assert "a small CPU model" in note
        api = plan.services["api"]
        assert plan.ports["api"].moved and api.port != aport
        assert api.command == f"api --fd {plan.ports['api'].sock.fileno()}"  # type: ignore[union-attr]
        assert api.env == {
            "UPSTREAM": f"http://127.0.0.1:{rport}",
            "BACKEND": f"http://127.0.0.1:{rport}/v1",
        }
        assert plan.services["runtime"].command == f"embedded --port {rport}"
    finally:
        plan.close_sockets()


async def test_plan_adopts_a_running_ollama(tmp_path: Path) -> None:
    cfg, rport, _ = runtime_stack(tmp_path)

    async def answers(svc: Service, port: int | None) -> bool:
        return svc.name == "ollama" and port == rport

    with port_taken(rport):
        plan = await make_plan(cfg, installed=lambda exe: False, answers=answers)
    plan.close_sockets()
    assert plan.choices["runtime"].variant == "ollama"
    assert "already running, adopted" in plan.choices["runtime"].note
    assert plan.ports["runtime"].adopted and plan.adopted == {"runtime"}
    assert plan.services["api"].env["BACKEND"] == ""


async def test_replan_fails_over_and_switches_back(tmp_path: Path) -> None:
    cfg, rport, _ = runtime_stack(tmp_path)
    ollama_up = True

    async def answers(svc: Service, port: int | None) -> bool:
        return ollama_up and svc.name == "ollama" and port == rport

    with port_taken(rport):
        plan = await make_plan(cfg, installed=lambda exe: False, answers=answers)
    try:
        api_before = plan.services["api"]
        ollama_up = False  # Ollama quit: its port is free again
        r = await replan(cfg, plan, "runtime", "failover", lambda exe: False, answers)
        assert r is not None and not r.same and not r.adopted
        assert r.choice is not None and r.choice.variant == "embedded"
        assert r.port is not None and r.port.port == rport and not r.port.adopted
        assert r.changed == ["api"]  # its BACKEND now points at the embedded runtime
        assert r.services["api"].env["BACKEND"] == f"http://127.0.0.1:{rport}/v1"
        assert r.services["api"].command == api_before.command  # same socket, same fd
        plan.apply(r)
        assert plan.choices["runtime"].variant == "embedded" and plan.adopted == frozenset()
        # nothing after the last variant
        assert await replan(cfg, plan, "runtime", "failover", lambda exe: False, answers) is None
        # a restart re-decides from the top: Ollama answers again, so it is adopted again
        ollama_up = True
        with port_taken(rport):
            back = await replan(cfg, plan, "runtime", "restart", lambda exe: False, answers)
        assert back is not None and back.adopted and back.choice is not None
        assert back.choice.variant == "ollama" and back.changed == ["api"]
        assert back.services["api"].env["BACKEND"] == ""
        plan.apply(back)
        assert plan.adopted == {"runtime"} and plan.ports["runtime"].sock is None
        # and a restart that changes nothing is a plain restart
        with port_taken(rport):
            same = await replan(cfg, plan, "runtime", "restart", lambda exe: False, answers)
        assert same is not None and same.same
    finally:
        plan.close_sockets()
