"""The report object: ordered sections, saved as one self-contained HTML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from radharmony.report._html import page_html, section_html


@dataclass
class HTMLReport:
    """A self-contained HTML report (figures embedded; viewing it needs no network).

    Displays itself in Jupyter and is written with :meth:`save_as_html`.

    Attributes
    ----------
    title : str
        Report title.
    subtitle : str
        One line under the title (data, date of the software versions, ...).
    sections : list of tuple
        ``(anchor, title, body_html)`` in display order.
    """

    title: str
    subtitle: str = ""
    sections: list[tuple[str, str, str]] = field(default_factory=list)

    def add_section(self, anchor: str, title: str, body_html: str) -> None:
        """Append a section (``body_html`` must already be escaped HTML)."""
        self.sections.append((anchor, title, body_html))

    def get_html(self) -> str:
        """Return the full HTML document."""
        rendered = [
            section_html(title, body, anchor=anchor) for anchor, title, body in self.sections
        ]
        return page_html(self.title, self.subtitle, rendered)

    def save_as_html(self, path: str | Path) -> Path:
        """Write the report to ``path`` and return it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.get_html(), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        return self.get_html()
