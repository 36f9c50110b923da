"""OpenAI cursor pagination as keyset queries on (scope, seq) indexes.

A page never uses OFFSET: the cursor's ``seq`` is looked up by id and the page is the next
``limit + 1`` rows past it on an index, so it costs the same on any size of list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, Label, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from .errors import InvalidRequest
from .tables import Keyed

Row = TypeVar("Row", bound=Keyed)


@dataclass(frozen=True, kw_only=True)
class PageParams:
    limit: int = 20
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None


async def _cursor_seq(
    session: AsyncSession,
    table: type[Row],
    cursor: str,
    scope: Sequence[ColumnElement[bool]],
    param: str,
) -> int:
    seq = await session.scalar(select(table.seq).where(table.id == cursor, *scope))
    if seq is None:
        raise InvalidRequest(
            f"Invalid '{param}': no object with id '{cursor}' in this list.", param=param
        )
    return seq


@cache
def _columns(table: type[Keyed]) -> list[Label[Any]]:
    """Every mapped column, labelled with its attribute name (``metadata_``, not
    ``metadata``): a page is read as plain rows, which ``to_object`` reads like ORM objects
    without the identity map and instance state that loading objects into the session costs."""
    return [prop.columns[0].label(prop.key) for prop in sa_inspect(table).column_attrs]


async def fetch_page(
    session: AsyncSession,
    table: type[Row],
    params: PageParams,
    scope: Sequence[ColumnElement[bool]],
    to_object: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """One page of ``table`` rows within ``scope``, shaped as OpenAI's list object."""
    conditions = list(scope)
    ascending = params.order == "asc"
    if params.after:
        seq = await _cursor_seq(session, table, params.after, scope, "after")
        conditions.append(table.seq > seq if ascending else table.seq < seq)
    if params.before:
        seq = await _cursor_seq(session, table, params.before, scope, "before")
        conditions.append(table.seq < seq if ascending else table.seq > seq)
    # With only `before`, the page is the rows nearest the cursor: walk backwards, then flip.
    backwards = bool(params.before) and not params.after
    walk_ascending = ascending != backwards
    order_by = table.seq.asc() if walk_ascending else table.seq.desc()
    stmt = select(*_columns(table)).where(*conditions).order_by(order_by).limit(params.limit + 1)
    rows = list((await session.execute(stmt)).all())
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    if backwards:
        rows.reverse()
    data = [to_object(row) for row in rows]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
