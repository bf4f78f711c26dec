"""Text the archive can store on every backend: PostgreSQL refuses the NUL character in text and
JSONB (SQLite does not), and an LLM's reply or a crashing candidate's output may hold one. Each
NUL becomes U+FFFD (the replacement character) before a row is written, so such input is stored
with a visible mark instead of failing the write (and the campaign with it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

NUL = "\x00"
REPLACEMENT = "\ufffd"


def storable(value: Any) -> Any:
    """`value` with every NUL in its strings (and in nested JSON keys and values) replaced."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT) if NUL in value else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def _clean(session: Session, _context: object, _instances: object) -> None:
    for row in (*session.new, *session.dirty):
        for attribute in inspect(row).mapper.column_attrs:
            current = getattr(row, attribute.key)
            if isinstance(current, str | dict | list):
                cleaned = storable(current)
                if cleaned != current:
                    setattr(row, attribute.key, cleaned)


def install(sessions: sessionmaker[Session]) -> None:
    """Clean every row flushed through sessions of this factory."""
    event.listen(sessions, "before_flush", _clean)
