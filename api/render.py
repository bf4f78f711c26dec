"""Candidate code for display: pygments HTML and a unified diff against a parent.

Pygments escapes the code as it highlights it, so the page may insert `code_html` as HTML; the
stylesheet for the `.hl` class is served with the page. Nothing here runs code.
"""

from __future__ import annotations

import difflib

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

CSS_CLASS = "hl"

_FORMATTER = HtmlFormatter(cssclass=CSS_CLASS, linenos=False)
_LEXER = PythonLexer()


def code_html(source: str) -> str:
    """`source` as highlighted, escaped HTML (a `<div class="hl"><pre>...</pre></div>`)."""
    return highlight(source, _LEXER, _FORMATTER)


def code_diff(parent_source: str, source: str, *, parent: str, child: str) -> str:
    """Unified diff from the parent's code to this one (empty string when identical)."""
    lines = difflib.unified_diff(
        parent_source.splitlines(keepends=True),
        source.splitlines(keepends=True),
        fromfile=parent,
        tofile=child,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
