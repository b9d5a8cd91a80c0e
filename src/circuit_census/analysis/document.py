"""The report as a document: a list of blocks, rendered to Markdown or to HTML.

Both renderers take the same blocks, so ``report.md`` and ``report.html`` always say the
same thing. The HTML is self-contained: inline CSS and figures as base64 PNG data URIs.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Para:
    text: str  # plain text; **bold** spans allowed
    css: str = ""


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]  # all empty: a key/value table without a header row
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()  # right-aligned columns
    caption: str = ""

    def numeric_columns(self) -> tuple[bool, ...]:
        return self.numeric or (False,) * len(self.header)


@dataclass(frozen=True)
class FigureBlock:
    name: str  # file name under figures/
    caption: str


Block = Heading | Para | Bullets | Table | FigureBlock


def slug(name: str) -> str:
    """An anchor and file name for a heading: ``capacity (depth 1)`` -> ``capacity-depth-1``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "series"


# ------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(b: Table) -> str:
    lines = []
    if b.caption:
        lines.append(f"*{b.caption}*\n")
    lines.append("| " + " | ".join(_md_cell(h) or " " for h in b.header) + " |")
    lines.append("|" + "|".join("---:" if n else ":---" for n in b.numeric_columns()) + "|")
    for row in b.rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return "\n".join(lines)


def _md_block(b: Block, figure_dir: str) -> str:
    if isinstance(b, Heading):
        return "#" * b.level + " " + b.text
    if isinstance(b, Para):
        return b.text
    if isinstance(b, Bullets):
        return "\n".join(f"- {i}" for i in b.items)
    if isinstance(b, Table):
        return _md_table(b)
    if isinstance(b, FigureBlock):
        alt = b.name.rsplit(".", 1)[0]
        return f"![{alt}]({figure_dir}/{b.name})\n\n*{b.caption}*"
    raise TypeError(f"not a report block: {b!r}")


def render_markdown(blocks: Sequence[Block], figure_dir: str = "figures") -> str:
    """The blocks as Markdown; figures linked from ``figure_dir``."""
    return "\n\n".join(_md_block(b, figure_dir) for b in blocks) + "\n"


# ----------------------------------------------------------------------- HTML

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #1d1d1f;
  max-width: 1180px; margin: 2em auto; padding: 0 1.5em; line-height: 1.5; font-size: 15px; }
h1 { font-size: 1.9em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #d8dde3; padding-bottom: 0.2em; margin-top: 2.2em; }
h3 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #d0d5db; padding: 0.3em 0.6em; vertical-align: top; }
th { background: #f0f3f6; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafbfc; }
p.caption { font-weight: 600; margin: 1.2em 0 0.2em; }
p.caption + table { margin-top: 0.2em; }
td.key { background: #f0f3f6 !important; font-weight: 600; white-space: nowrap; }
figure { margin: 1em 0; }
figure img { width: 100%; height: auto; border: 1px solid #e3e6ea; }
figcaption { font-size: 0.88em; color: #555; margin-top: 0.3em; }
p.finding { background: #f3f7fb; border-left: 4px solid #1f5f9e; padding: 0.6em 0.9em; }
p.note { color: #666; font-size: 0.88em; }
.verdict-agrees { color: #1b6e20; font-weight: 600; }
.verdict-disagrees { color: #a12a1b; font-weight: 600; }
.verdict-inconclusive { color: #8a5a00; font-weight: 600; }
p.verdict { background: #f8f6f1; border-left: 4px solid #b5841c; padding: 0.6em 0.9em; }
nav ul { columns: 2; }
@media (max-width: 900px) {
  body { font-size: 14px; padding: 0 0.6em; }
  table { font-size: 0.85em; }
  th, td { padding: 0.25em 0.4em; }
}
"""

# A table cell holding a verdict word is coloured by it.
_VERDICT_CLASS = {
    "agrees": "verdict-agrees",
    "inconclusive": "verdict-inconclusive",
    "disagrees": "verdict-disagrees",
}

_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _html_text(text: str) -> str:
    return _BOLD.sub(r"<strong>\1</strong>", html.escape(text, quote=False))


def _html_row(row: Sequence[str], numeric: Sequence[bool], key_column: bool) -> str:
    cells = []
    for c, n in zip(row, numeric, strict=True):
        cls = _VERDICT_CLASS.get(c.removesuffix(" †"), "num" if n else "")
        if key_column and not cells:
            cls = "key"
        attr = f' class="{cls}"' if cls else ""
        cells.append(f"<td{attr}>{_html_text(c)}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def _html_table(b: Table) -> str:
    numeric = b.numeric_columns()
    has_header = any(b.header)
    parts = []
    if b.caption:
        parts.append(f'<p class="caption">{_html_text(b.caption)}</p>')
    parts.append("<table>")
    if has_header:
        cells = "".join(
            f"<th{' class=num' if n else ''}>{_html_text(h)}</th>"
            for h, n in zip(b.header, numeric, strict=True)
        )
        parts.append(f"<thead><tr>{cells}</tr></thead>")
    parts.append("<tbody>")
    parts += [_html_row(row, numeric, key_column=not has_header) for row in b.rows]
    parts.append("</tbody></table>")
    return "".join(parts)


def _html_block(b: Block, figures: Mapping[str, bytes]) -> str:
    if isinstance(b, Heading):
        anchor = f' id="{html.escape(b.anchor)}"' if b.anchor else ""
        return f"<h{b.level}{anchor}>{_html_text(b.text)}</h{b.level}>"
    if isinstance(b, Para):
        css = f' class="{b.css}"' if b.css else ""
        return f"<p{css}>{_html_text(b.text)}</p>"
    if isinstance(b, Bullets):
        items = "".join(f"<li>{_html_text(i)}</li>" for i in b.items)
        return f"<ul>{items}</ul>"
    if isinstance(b, Table):
        return _html_table(b)
    if isinstance(b, FigureBlock):
        data = base64.b64encode(figures[b.name]).decode("ascii")
        return (
            f'<figure><img alt="{html.escape(b.caption)}" '
            f'src="data:image/png;base64,{data}">'
            f"<figcaption>{_html_text(b.caption)}</figcaption></figure>"
        )
    raise TypeError(f"not a report block: {b!r}")


def render_html(blocks: Sequence[Block], figures: Mapping[str, bytes], title: str) -> str:
    """The blocks as one self-contained HTML page; ``figures`` maps file names to PNG bytes."""
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
    ]
    body = [_html_block(b, figures) for b in blocks]
    return "\n".join([*head, *body, "</body>", "</html>"]) + "\n"
