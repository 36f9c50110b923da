"""OpenAI's attribute filters (comparison and compound), evaluated against a file's
attributes."""

from __future__ import annotations

from typing import Any

__all__ = ["matches"]


def matches(node: dict[str, Any], attributes: dict[str, Any]) -> bool:
    kind = node.get("type", "eq")
    if kind in ("and", "or"):
        results = (matches(child, attributes) for child in node.get("filters", []))
        return all(results) if kind == "and" else any(results)
    key, wanted = node.get("key"), node.get("value")
    if key not in attributes:
        return kind in ("ne", "nin")
    have = attributes[key]
    if kind == "eq":
        return have == wanted
    if kind == "ne":
        return have != wanted
    if kind in ("in", "nin"):
        inside = isinstance(wanted, list) and have in wanted
        return inside if kind == "in" else not inside
    try:
        if kind == "gt":
            return have > wanted
        if kind == "gte":
            return have >= wanted
        if kind == "lt":
            return have < wanted
        if kind == "lte":
            return have <= wanted
    except TypeError:  # comparing a string with a number: no match, as OpenAI
        return False
    return False
