"""Markdown results (report.md, the model card, the parameter reports) as self-contained HTML pages,
so that `snakemake --report` shows them inside the report (it embeds .html results in a frame,
while markdown is only offered as a download). Rendered with markdown-it-py (CommonMark + tables);
local images are inlined as data URIs, since the page is shown without its folder, and links to
local files are rewritten to hold from the page's own folder.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import os
import re
from pathlib import Path

from .io import write_text

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; }
td { text-align: right; } td:first-child { text-align: left; }
th { background: #f0f0f0; } img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
"""


def inline_images(body: str, base_dir: Path) -> str:
    """<img src="relative.png"> -> a data URI, when the file exists beside the markdown."""
    def replace(match: re.Match) -> str:
        path = base_dir / html.unescape(match.group(1))
        if not path.is_file():
            return match.group(0)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return f'src="data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"'

    return re.sub(r'src="(?!data:|https?:)([^"]+)"', replace, body)


def relink(body: str, base_dir: Path, page_dir: Path) -> str:
    """<a href="relative"> to a file beside the markdown -> the same file, seen from the page's folder."""
    def replace(match: re.Match) -> str:
        path = base_dir / html.unescape(match.group(1))
        if not path.exists():
            return match.group(0)
        return f'href="{html.escape(Path(os.path.relpath(path, page_dir)).as_posix())}"'

    return re.sub(r'href="(?![a-z]+:|#|/)([^"]+)"', replace, body)


def markdown_to_html(text: str, *, title: str, base_dir: Path, page_dir: Path | None = None) -> str:
    from markdown_it import MarkdownIt

    metadata = ""
    front = _FRONT_MATTER.match(text)
    if front:  # the card's Hub metadata (YAML): shown as is, folded
        metadata = (f"<details><summary>Hub metadata (YAML header)</summary><pre>{html.escape(front.group(1))}"
                    "</pre></details>\n")
        text = text[front.end():]
    body = inline_images(MarkdownIt("commonmark").enable("table").render(text), base_dir)
    body = relink(body, base_dir, page_dir or base_dir)
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head>\n<body>\n{metadata}{body}</body></html>\n")


def write_markdown_page(md_path: str, out: str, title: str) -> None:
    """Stage entry: one markdown file -> one self-contained HTML page."""
    source = Path(md_path)
    write_text(out, markdown_to_html(source.read_text(encoding="utf-8"), title=title, base_dir=source.parent,
                                     page_dir=Path(out).parent))
