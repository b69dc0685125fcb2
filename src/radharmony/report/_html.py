"""Self-contained HTML building blocks: escaped text, tables, embedded figures, cards."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import pandas as pd

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;
 color:#1d2733;background:#f6f7f9;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:1.7em;margin:.2em 0}h2{border-bottom:2px solid #d8dde3;padding-bottom:4px;
 margin-top:2em}h3{margin-bottom:.3em}
section{background:#fff;border:1px solid #e1e5ea;border-radius:6px;padding:8px 20px 16px;overflow-x:auto;
 margin:18px 0}
table{border-collapse:collapse;font-size:.88em;margin:8px 0}
th,td{border:1px solid #d8dde3;padding:3px 8px;text-align:right}
th{background:#eef1f4}td:first-child,th:first-child{text-align:left}
figure{margin:10px 0;display:inline-block;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid #e1e5ea}
figcaption{font-size:.85em;color:#52606d;max-width:560px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #d8dde3;border-radius:6px;padding:8px 12px;width:340px;background:#fbfcfd}
.card h4{margin:.2em 0}.card img{max-width:100%}
.refer{border-left:5px solid #c0392b}.single{border-left:5px solid #27ae60}
.warning{background:#fff4e5;border-left:5px solid #e67e22;padding:6px 12px}
.ok{background:#eafaf1;border-left:5px solid #27ae60;padding:6px 12px}
.methods{background:#f3f6fa;border-left:5px solid #2c7be5;padding:8px 14px}
code{background:#eef1f4;padding:1px 4px;border-radius:3px}
"""


def escape(text: Any) -> str:
    """Return ``text`` as HTML-safe text."""
    return html.escape(str(text))


def table_html(frame: pd.DataFrame, *, index: bool = False, float_format: str = "{:.3g}") -> str:
    """Return a DataFrame as an HTML table with escaped cells and compact numbers."""
    formatters = {
        column: (lambda v, f=float_format: "" if pd.isna(v) else f.format(v))
        for column in frame.columns
        if pd.api.types.is_float_dtype(frame[column])
    }
    return frame.to_html(index=index, escape=True, formatters=formatters, border=0, na_rep="")


def figure_html(
    figure: Any, caption: str = "", *, dpi: int = 110, close: bool = True, tight: bool = True
) -> str:
    """Return a matplotlib figure embedded as a PNG data URI (no file, no network).

    The figure is closed unless ``close`` is False (a figure redrawn for several images);
    ``tight`` crops the white margins (slower).
    """
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    if close:
        plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    alt = escape(caption or "figure")
    caption_html = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{caption_html}</figure>'


def section_html(title: str, body: str, *, anchor: str) -> str:
    """Return a titled report section."""
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>{body}</section>'


def page_html(title: str, subtitle: str, sections: list[str]) -> str:
    """Return a complete, self-contained HTML document."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>"
        f"<h1>{escape(title)}</h1><p>{escape(subtitle)}</p>{''.join(sections)}"
        "</main></body></html>"
    )
