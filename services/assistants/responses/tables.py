"""Tables of Responses and Conversations: responses, conversations and the items of both."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..tables import Base, Keyed

__all__ = ["Container", "Conversation", "ResponseItem", "ResponseRow"]


class ResponseRow(Keyed, Base):
    """A stored response. ``output`` is the list of output items as the API shows them."""

    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_status", "status"),)

    status: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(256))
    instructions: Mapped[str | None] = mapped_column(Text)
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    background: Mapped[bool] = mapped_column(Boolean, default=False)
    tools: Mapped[list[Any]] = mapped_column(JSON, default=list)
    tool_choice: Mapped[Any] = mapped_column(JSON, nullable=True)
    parallel_tool_calls: Mapped[bool] = mapped_column(Boolean, default=True)
    temperature: Mapped[float | None] = mapped_column(Float)
    top_p: Mapped[float | None] = mapped_column(Float)
    max_output_tokens: Mapped[int | None] = mapped_column(Integer)
    truncation: Mapped[str] = mapped_column(String(16), default="disabled")
    text: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    include: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # What the API echoes back without acting on it (user, reasoning, service_tier, ...),
    # and what executing it needs that has no column of its own (the container_id).
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output: Mapped[list[Any]] = mapped_column(JSON, default=list)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    incomplete_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    completed_at: Mapped[int | None] = mapped_column(BigInteger)
    # Executor bookkeeping, as on runs: who executes the response and until when.
    worker_id: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Conversation(Keyed, Base):
    __tablename__ = "conversations"


class ResponseItem(Keyed, Base):
    """One item: an input of a response, an output of one, or one added to a conversation.

    An item belongs to the response that used or produced it (``response_id``, ``kind``
    input/output) and, when it is part of one, to a conversation (``conversation_id``).
    ``body`` is the item as the API shows it, its ``id`` included.
    """

    __tablename__ = "response_items"
    __table_args__ = (
        Index("ix_response_items_response_seq", "response_id", "kind", "seq"),
        Index("ix_response_items_conversation_seq", "conversation_id", "seq"),
    )

    response_id: Mapped[str | None] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class Container(Keyed, Base):
    """A code_interpreter container: the name of one sandbox session, and the files it is
    given. The session itself lives in the process that runs its code; a container idle
    for CODE_INTERPRETER_IDLE_SECONDS has expired, as its session has."""

    __tablename__ = "containers"

    name: Mapped[str] = mapped_column(String(256))
    file_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    last_active_at: Mapped[int] = mapped_column(BigInteger)
