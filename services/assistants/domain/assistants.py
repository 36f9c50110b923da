"""Assistants: create, read, modify, delete, list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import now
from ..errors import not_found
from ..ids import new_id
from ..pagination import PageParams, fetch_page
from ..schemas.assistants import AssistantCreate, AssistantModify
from ..schemas.common import dump_optional, dump_tools
from ..tables import Assistant
from ..vector_stores.resources import resolve_tool_resources


def assistant_object(row: Assistant) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "assistant",
        "created_at": row.created_at,
        "name": row.name,
        "description": row.description,
        "model": row.model,
        "instructions": row.instructions,
        "tools": row.tools or [],
        "tool_resources": row.tool_resources,
        "metadata": row.metadata_ or {},
        "temperature": row.temperature,
        "top_p": row.top_p,
        "response_format": row.response_format,
        "reasoning_effort": row.reasoning_effort,
    }


async def create_assistant(session: AsyncSession, body: AssistantCreate) -> Assistant:
    resources = await resolve_tool_resources(session, dump_optional(body.tool_resources))
    row = Assistant(
        id=new_id("asst_"),
        created_at=now(),
        model=body.model,
        name=body.name,
        description=body.description,
        instructions=body.instructions,
        reasoning_effort=body.reasoning_effort,
        tools=dump_tools(body.tools),
        tool_resources=resources,
        metadata_=body.metadata or {},
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        response_format=dump_optional(body.response_format) or "auto",
    )
    session.add(row)
    await session.flush()
    return row


async def get_assistant(session: AsyncSession, assistant_id: str) -> Assistant:
    row = await session.scalar(select(Assistant).where(Assistant.id == assistant_id))
    if row is None:
        raise not_found("assistant", assistant_id, "assistant_id")
    return row


async def modify_assistant(
    session: AsyncSession, assistant_id: str, body: AssistantModify
) -> Assistant:
    row = await get_assistant(session, assistant_id)
    fields = body.model_fields_set
    if body.model is not None:  # a null model keeps the current one
        row.model = body.model
    for name in ("name", "description", "instructions", "reasoning_effort"):
        if name in fields:
            setattr(row, name, getattr(body, name))
    if "tools" in fields:
        row.tools = dump_tools(body.tools or [])
    if "tool_resources" in fields:
        row.tool_resources = await resolve_tool_resources(
            session, dump_optional(body.tool_resources)
        )
    if "metadata" in fields:
        row.metadata_ = body.metadata or {}
    if "temperature" in fields:
        row.temperature = 1.0 if body.temperature is None else body.temperature
    if "top_p" in fields:
        row.top_p = 1.0 if body.top_p is None else body.top_p
    if "response_format" in fields:
        row.response_format = dump_optional(body.response_format) or "auto"
    await session.flush()
    return row


async def delete_assistant(session: AsyncSession, assistant_id: str) -> None:
    result = await session.execute(delete(Assistant).where(Assistant.id == assistant_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise not_found("assistant", assistant_id, "assistant_id")


async def list_assistants(session: AsyncSession, params: PageParams) -> dict[str, Any]:
    return await fetch_page(session, Assistant, params, {}, assistant_object)
