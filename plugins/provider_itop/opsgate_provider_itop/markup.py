"""Plain text <-> the HTML iTop keeps in text attributes and case logs."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "ul", "ol", "table"}
_SKIP = {"script", "style"}
_TAG = re.compile(r"<[A-Za-z!/][^>]*>")


def looks_like_html(text: str) -> bool:
    """True when the text holds at least one tag."""
    return bool(_TAG.search(text))


def text_to_html(text: str) -> str:
    """Escape plain text and wrap it as iTop does: one `<p>`, newlines as `<br>`."""
    return "<p>" + html.escape(text, quote=False).replace("\r\n", "\n").replace("\n", "<br>") + "</p>"


class _Stripper(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK and tag != "br":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(value: str) -> str:
    """Strip tags and decode entities; block elements become line breaks, runs of blank lines collapse."""
    if not value:
        return ""
    if not looks_like_html(value):
        return html.unescape(value).strip()
    parser = _Stripper()
    parser.feed(value)
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
