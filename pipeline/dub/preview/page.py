"""HTML of the preview pages: one inline stylesheet, no script, no fonts or files fetched, so a
page opens offline, from object storage or as an e-mail attachment. Everything that comes from a
report, a manifest or an error is escaped: a job id or a file name cannot inject markup."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#212529;max-width:1000px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dee2e6}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #dee2e6;padding:3px 8px;text-align:left}
figure{display:inline-block;margin:6px;vertical-align:top}figure img{max-width:470px;height:auto}
figcaption{font-size:12px;color:#495057}
.bar{background:#74c0fc;height:10px}.warn{color:#c92a2a;font-weight:bold}.error{color:#c92a2a}
.note{font-size:12px;color:#495057}footer{margin-top:32px;font-size:12px;color:#495057}
.failed{background:#fff5f5}code{font-size:12px}
"""


class Markup(str):
    """HTML made by this module from escaped parts: a table cell that is not escaped again."""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def document(title: str, body: Iterable[str], footer: Sequence[tuple[str, str]]) -> str:
    """A whole page; `footer`: (element, what it is) pairs, one line each."""
    lines = "".join(f"<li><b>{esc(name)}</b>: {esc(text)}</li>" for name, text in footer)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        + "".join(body)
        + f"<footer><h2>What is on this page</h2><ul>{lines}</ul></footer></body></html>"
    )


def table(header: Sequence[str] | None, rows: Iterable[Sequence[Any]], row_class: Sequence[str] = ()) -> str:
    """Cells are escaped, except those wrapped in `Markup` (links, bars) made here; no `header`: a
    table of (name, value) rows."""
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f"<td>{c if isinstance(c, Markup) else esc(c)}</td>" for c in row)
        cls = f' class="{esc(row_class[i])}"' if i < len(row_class) and row_class[i] else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def link(href: str, text: str) -> Markup:
    return Markup(f'<a href="{esc(href)}">{esc(text)}</a>')


def bar(fraction: float, width: int = 200) -> Markup:
    return Markup(f'<div class="bar" style="width:{max(0.0, min(fraction, 1.0)) * width:.0f}px"></div>')
