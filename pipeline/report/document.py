"""The report as plain data: an introduction and sections of tables and figures, rendered to Markdown here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.report.tables import Table, to_markdown


@dataclass
class Plot:
    """A PNG of the report and what it shows."""

    path: Path
    caption: str


@dataclass
class Section:
    """A titled part of the report."""

    title: str
    tables: list[Table] = field(default_factory=list)
    figures: list[Plot] = field(default_factory=list)


@dataclass
class Document:
    """Everything the report says; figures appear in the HTML page only."""

    title: str
    intro: list[str]  # paragraphs
    sections: list[Section]


def markdown_document(document: Document) -> str:
    """table.md: the title, the introduction and every section's tables (sections without tables are left out)."""
    parts = [f"# {document.title}\n", *(f"{line}\n" for line in document.intro)]
    for section in document.sections:
        if section.tables:
            parts.append(f"## {section.title}\n")
            parts += [to_markdown(table) for table in section.tables]
    return "\n".join(parts)
