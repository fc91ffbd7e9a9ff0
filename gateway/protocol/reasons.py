"""Receipt reasons (lists of {field, label, value, rule, message}) as display strings."""

from __future__ import annotations

import json


def reason_texts(text: str | None) -> list[str]:
    """The stored JSON reasons of a receipt as one Chinese line each ("标签：说明")."""
    if not text:
        return []
    try:
        items = json.loads(text)
    except ValueError:
        return [text]
    out = []
    for it in items if isinstance(items, list) else [items]:
        if isinstance(it, dict):
            label = it.get("label") or it.get("field") or ""
            msg = str(it.get("message") or it.get("rule") or json.dumps(it, ensure_ascii=False))
            out.append(f"{label}：{msg}" if label and label not in msg else msg)
        else:
            out.append(str(it))
    return out
