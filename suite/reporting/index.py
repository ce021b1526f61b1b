"""``index.md`` linking every report file, and a self-contained ``index.html``.

The HTML inlines the Markdown tables (rendered) and every PNG (base64), so one file can be mailed
or opened offline; CSV / LaTeX / SVG files stay links relative to the report folder.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;\
margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
img{max-width:100%;border:1px solid #ddd;margin:4px 0}
code{background:#f5f5f5;padding:0 3px}
h1,h2,h3{border-bottom:1px solid #eee;padding-bottom:2px}
.note{color:#a00}
"""


@dataclass
class Item:
    kind: str  # markdown (inlined in HTML) | image (inlined) | file (linked)
    path: Path  # relative to the report folder
    caption: str = ""


@dataclass
class Section:
    title: str
    items: list[Item] = field(default_factory=list)
    text: str = ""  # Markdown shown under the heading


def _inline(text: str, base_dir: Path | None) -> str:
    """Inline Markdown (code, images, links, bold, italics) of already-split text -> HTML."""
    out = []
    pos = 0
    pattern = re.compile(r"`([^`]+)`|!\[([^\]]*)\]\(([^)]+)\)|\[([^\]]+)\]\(([^)]+)\)")
    for m in pattern.finditer(text):
        out.append(_emphasis(html.escape(text[pos:m.start()])))
        if m.group(1) is not None:
            out.append(f"<code>{html.escape(m.group(1))}</code>")
        elif m.group(3) is not None:
            out.append(_img(m.group(2), m.group(3), base_dir))
        else:
            out.append(f'<a href="{html.escape(m.group(5), quote=True)}">{_emphasis(html.escape(m.group(4)))}</a>')
        pos = m.end()
    out.append(_emphasis(html.escape(text[pos:])))
    return "".join(out)


def _emphasis(text: str) -> str:
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", text)


def _img(alt: str, src: str, base_dir: Path | None) -> str:
    path = (base_dir / src) if base_dir is not None and not re.match(r"^[a-z]+:", src) else None
    if path is not None and path.suffix.lower() == ".png" and path.is_file():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        src_attr = f"data:image/png;base64,{data}"
    else:
        src_attr = html.escape(src, quote=True)
    return f'<img alt="{html.escape(alt, quote=True)}" src="{src_attr}">'


def _split_row(line: str) -> list[str]:
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    cells = re.split(r"(?<!\\)\|", body)
    return [c.strip().replace("\\|", "|") for c in cells]


def markdown_to_html(text: str, base_dir: str | Path | None = None) -> str:
    """A small Markdown subset -> HTML: headings, pipe tables, lists, paragraphs, inline marks.

    Images whose source is a local PNG (relative to ``base_dir``) are embedded as base64.
    """
    base = Path(base_dir) if base_dir is not None else None
    lines = text.splitlines()
    out: list[str] = []
    paragraph: list[str] = []
    in_list = False

    def flush_paragraph() -> None:
        nonlocal paragraph
        if paragraph:
            out.append("<p>" + " ".join(_inline(p, base) for p in paragraph) + "</p>")
            paragraph = []

    def close_list() -> None:
        nonlocal in_list
        if in_list:
            out.append("</ul>")
            in_list = False

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        if not stripped:
            flush_paragraph()
            close_list()
        elif heading:
            flush_paragraph()
            close_list()
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2), base)}</h{level}>")
        elif stripped.startswith("|") and i + 1 < len(lines) and re.match(r"^\|?\s*:?-{3,}", lines[i + 1].strip()):
            flush_paragraph()
            close_list()
            header = _split_row(stripped)
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_split_row(lines[i]))
                i += 1
            out.append(
                "<table><thead><tr>" + "".join(f"<th>{_inline(h, base)}</th>" for h in header) + "</tr></thead><tbody>"
            )
            for row in rows:
                out.append("<tr>" + "".join(f"<td>{_inline(c, base)}</td>" for c in row) + "</tr>")
            out.append("</tbody></table>")
            continue
        elif re.match(r"^[-*]\s+", stripped):
            flush_paragraph()
            if not in_list:
                out.append("<ul>")
                in_list = True
            item_text = re.sub(r"^[-*]\s+", "", stripped)
            out.append(f"<li>{_inline(item_text, base)}</li>")
        else:
            close_list()
            paragraph.append(stripped)
        i += 1
    flush_paragraph()
    close_list()
    return "\n".join(out)


def index_markdown(title: str, intro: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro, ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        if section.text:
            lines += [section.text, ""]
        previous = None
        for item in section.items:
            rel = item.path.as_posix()
            caption = item.caption or item.path.name
            if item.kind == "image":
                if previous not in (None, "image"):
                    lines.append("")  # end the link list before a picture
                lines += [f"![{caption}]({rel})", ""]
            else:
                lines.append(f"- [{caption}]({rel})")
            previous = item.kind
        if section.items and section.items[-1].kind != "image":
            lines.append("")
    return "\n".join(lines)


def index_html(title: str, intro: str, sections: list[Section], out_dir: str | Path) -> str:
    out_dir = Path(out_dir)
    body = [f"<h1>{html.escape(title)}</h1>"]
    if intro:
        body.append(markdown_to_html(intro, out_dir))
    toc = "".join(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(sections))
    body.append(f"<ul>{toc}</ul>")
    for i, section in enumerate(sections):
        body.append(f'<h2 id="s{i}">{html.escape(section.title)}</h2>')
        if section.text:
            body.append(markdown_to_html(section.text, out_dir))
        links = []
        for item in section.items:
            path = out_dir / item.path
            if item.kind == "markdown" and path.is_file():
                content = path.read_text()
                # Shift headings down one level so the section heading stays on top.
                content = re.sub(r"^(#{1,5}) ", lambda m: "#" + m.group(1) + " ", content, flags=re.M)
                body.append(markdown_to_html(content, path.parent))
                links.append(item)
            elif item.kind == "image" and path.is_file():
                body.append(f"<figure>{_img(item.caption, item.path.as_posix(), out_dir)}"
                            f"<figcaption>{html.escape(item.caption)}</figcaption></figure>")
            else:
                links.append(item)
        if links:
            body.append(
                "<p>Files: "
                + ", ".join(
                    f'<a href="{html.escape(it.path.as_posix(), quote=True)}">'
                    f"{html.escape(it.caption or it.path.name)}</a>"
                    for it in links
                )
                + "</p>"
            )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_index(out_dir: str | Path, title: str, intro: str, sections: list[Section]) -> Path:
    """Write ``index.md`` and ``index.html`` into ``out_dir``; returns the Markdown path."""
    out_dir = Path(out_dir)
    md_path = out_dir / "index.md"
    md_path.write_text(index_markdown(title, intro, sections))
    (out_dir / "index.html").write_text(index_html(title, intro, sections, out_dir))
    return md_path
