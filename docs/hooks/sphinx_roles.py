"""mkdocs hook: drop the Sphinx role prefixes (``:func:``, ``:class:`` ...) that some docstrings use.

mkdocstrings renders ``:func:`sweep``` as the text ``:func:`` followed by ``sweep`` in code; this leaves
the code only, so the API reference reads cleanly without rewriting the docstrings.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):(<code>)")


def on_page_content(html: str, **_: Any) -> str:
    return _ROLE.sub(r"\1", html)
