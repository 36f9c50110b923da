"""50 concurrent writers on one thread: every message stored, none lost, no lock errors."""

from __future__ import annotations

import asyncio

import httpx
import openai

from tests.support.processes import ServiceProcess

WRITERS = 50
MESSAGES_EACH = 6


async def _write_all(base_url: str, thread_id: str) -> list[httpx.Response]:
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout would close
    # them under a request (a client-side race, not the service's).
    limits = httpx.Limits(max_connections=WRITERS + 10, keepalive_expiry=2)
    async with httpx.AsyncClient(
        base_url=f"{base_url}/v1",
        headers={"Authorization": "Bearer test-key"},
        limits=limits,
        timeout=60,
    ) as client:

        async def writer(n: int) -> list[httpx.Response]:
            responses = []
            for i in range(MESSAGES_EACH):
                responses.append(
                    await client.post(
                        f"/threads/{thread_id}/messages",
                        json={"role": "user", "content": f"w{n}-{i}", "metadata": {"w": str(n)}},
                    )
                )
                # Readers run alongside the writers; WAL lets them through.
                if i % 3 == 0:
                    responses.append(await client.get(f"/threads/{thread_id}/messages"))
            return responses

        results = await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    return [response for batch in results for response in batch]


def test_concurrent_writers_lose_nothing(
    openai_client: openai.OpenAI, assistants_service: ServiceProcess
) -> None:
    thread = openai_client.beta.threads.create()
    responses = asyncio.run(_write_all(assistants_service.base_url, thread.id))
    failed = [(r.status_code, r.text) for r in responses if r.status_code != 200]
    assert not failed, failed[:5]
    written = {
        r.json()["id"]: r.json()["content"][0]["text"]["value"]
        for r in responses
        if r.request.method == "POST"
    }
    assert len(written) == WRITERS * MESSAGES_EACH

    stored = {
        m.id: m.content[0].text.value  # type: ignore[union-attr]
        for m in openai_client.beta.threads.messages.list(thread.id, limit=100, order="asc")
    }
    assert stored == written
    expected = {f"w{n}-{i}" for n in range(WRITERS) for i in range(MESSAGES_EACH)}
    assert set(stored.values()) == expected
    # Each writer's own messages are stored in the order it wrote them.
    order = list(stored.values())
    for n in range(WRITERS):
        mine = [v for v in order if v.startswith(f"w{n}-")]
        assert mine == [f"w{n}-{i}" for i in range(MESSAGES_EACH)]
    log = assistants_service.log()
    assert "database is locked" not in log and "Traceback" not in log
