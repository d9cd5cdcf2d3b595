"""index.html: one self-contained page (tables as HTML tables, figures as base64 PNG data: URIs, inline CSS).

Nothing is loaded from elsewhere: no scripts, no stylesheets, no fonts, no links to the internet.
"""

from __future__ import annotations

import base64
from html import escape

from pipeline.report.document import Document, Plot, Section
from pipeline.report.tables import Table

STYLE = """
body { font-family: sans-serif; max-width: 1400px; margin: 1em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-size: 0.9em; color: #555; padding-bottom: 0.3em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .notes { font-size: 0.85em; color: #555; }
"""


def html_table(table: Table) -> str:
    """A <table> with its title as a heading and its caption and notes; a table without rows is its notes alone."""
    if not table.rows:
        return f'<p class="notes">{escape(" ".join(table.notes or ["Nothing to show."]))}</p>\n'
    head = "".join(f"<th>{escape(h)}</th>" for h in table.header)
    body = "\n".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    notes = "".join(f"<li>{escape(n)}</li>" for n in table.notes)
    return (f"<h3>{escape(table.title)}</h3>\n<table>\n<caption>{escape(table.caption)}</caption>\n"
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"
            + (f'<ul class="notes">{notes}</ul>\n' if notes else ""))


def html_figure(figure: Plot) -> str:
    """The PNG embedded as a data: URI, with its caption."""
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(figure.caption)}">'
            f"<figcaption>{escape(figure.caption)}</figcaption></figure>")


def html_section(section: Section) -> str:
    """A section: its title, its figures, then its tables."""
    parts = [f"<h2>{escape(section.title)}</h2>"]
    parts += [html_figure(f) for f in section.figures]
    parts += [html_table(t) for t in section.tables]
    return "\n".join(parts)


def html_document(document: Document) -> str:
    """The whole page."""
    intro = "\n".join(f"<p>{escape(line)}</p>" for line in document.intro)
    sections = "\n".join(html_section(s) for s in document.sections if s.tables or s.figures)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(document.title)}'
            f"</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{escape(document.title)}</h1>\n{intro}\n"
            f"{sections}\n</body>\n</html>\n")
