"""What may reach a published page: escaping for prose, an allowlist sanitizer for HTML, and a
checker for the final page.

Three layers, each on its own:

* :func:`escape_markdown` makes any value (an outcome name from a bibliography, a label from
  ``themes.json``) literal text in Markdown and HTML before it is put into a note's prose;
* :func:`sanitize` passes every HTML fragment of a note (Markdown cells, outputs, figures)
  through nh3 (the Ammonia sanitizer) with an allowlist of exactly what the template and the
  library produce: prose and table elements, inline SVG, links to http(s), mailto, the page
  itself or another page of the site, and PNG images as data URLs;
* :func:`page_violations` reads a whole page and lists every element, attribute or URL outside
  that allowlist (plus the page's own head); ``render`` refuses to publish a page with any.

nh3 is used rather than our own sanitizer: it parses HTML as a browser does (html5ever), which
is what makes an allowlist trustworthy.
"""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser

#: Prose, tables and layout: what Markdown and the library's HTML outputs use.
PROSE_TAGS = frozenset(
    """a abbr b blockquote br caption code col colgroup dd del details div dl dt em figcaption
    figure h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s section small span strong
    sub summary sup table tbody td tfoot th thead tr u ul""".split())
#: Inline SVG as matplotlib writes it (without its <style> element: see note.css).
SVG_TAGS = frozenset(
    """svg g path text tspan defs clipPath use rect circle ellipse line polyline polygon
    title desc linearGradient radialGradient stop mask pattern marker symbol""".split())
TAGS = PROSE_TAGS | SVG_TAGS
#: html.parser lowercases names: clippath -> clipPath
_SVG_BY_LOWER = {t.lower(): t for t in SVG_TAGS}

_SVG_ATTRIBUTES = frozenset(
    """viewBox width height x y x1 x2 y1 y2 cx cy r rx ry d points transform fill stroke
    style clip-path id href version xmlns font-size font-family text-anchor dominant-baseline
    opacity fill-opacity stroke-width stroke-dasharray stroke-linecap stroke-linejoin
    gradientUnits offset stop-color stop-opacity patternUnits markerWidth markerHeight refX
    refY orient preserveAspectRatio dx dy""".split())
ATTRIBUTES = {
    "*": {"class", "title", "lang", "dir", "role", "aria-label", "aria-hidden", "id"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "style"},
    "th": {"colspan", "rowspan", "scope", "style"},
    "ol": {"start"},
    "code": set(),
    **{t: set(_SVG_ATTRIBUTES) for t in SVG_TAGS},
}
#: The head and frame of a note page, written by the template (checked, never sanitized).
PAGE_TAGS = frozenset("html head meta title style body header main footer nav link time"
                      .split())
PAGE_ATTRIBUTES = {"html": {"lang"}, "time": {"datetime"}, "meta": {"charset", "name", "content", "http-equiv"},
                   # the page's other-language edition (hreflang), never a style sheet
                   "link": {"rel", "hreflang", "href"}, "a": {"hreflang"}}
#: The only http-equiv a page may carry: its Content-Security-Policy (never a refresh).
HTTP_EQUIV = frozenset({"content-security-policy"})

_SAFE_LINK = re.compile(r"^(https?://|mailto:|#|(\.\./)*[A-Za-z0-9_][A-Za-z0-9_./-]*(\.html|/)?(#.*)?$)",
                        re.I)
_PNG = re.compile(r"^data:image/png;base64,[A-Za-z0-9+/=\s]*$")
_URL_ATTRIBUTES = {"href", "src", "xlink:href", "action", "formaction", "poster", "background"}


def safe_url(tag: str, attribute: str, value: str) -> bool:
    """Whether a URL may stand in a page: links to http(s), mailto, the page itself (#...) or a
    relative page of the site; images only as PNG data URLs; nothing else (no javascript:,
    data: links, vbscript:, protocol-relative //host)."""
    v = re.sub(r"[\x00-\x20]", "", value)
    if tag == "img" and attribute == "src":
        return bool(_PNG.match(value))
    if tag == "use" and attribute == "href":
        return v.startswith("#")
    return bool(_SAFE_LINK.match(v)) and not v.startswith("//")


def _attribute_filter(tag: str, attribute: str, value: str):
    if attribute in _URL_ATTRIBUTES and not safe_url(tag, attribute, value):
        return None
    return value


def sanitize(fragment: str) -> str:
    """An HTML fragment with everything outside the allowlist removed (see the module)."""
    import nh3

    if not fragment:
        return fragment
    fragment = fragment.replace("xlink:href=", "href=")  # SVG 2: href, which nh3 knows
    return nh3.clean(fragment, tags=set(TAGS), clean_content_tags={"script", "style"},
                     attributes={k: set(v) for k, v in ATTRIBUTES.items()},
                     attribute_filter=_attribute_filter, strip_comments=True, link_rel=None,
                     url_schemes={"http", "https", "mailto", "data"})


#: What Markdown or HTML could read as markup inside a line: emphasis, code, links and
#: images ([ ] !), tables (|), strikethrough (~), math ($), HTML and entities (< > &), and the
#: colon of bare URLs, which Markdown would turn into links.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]#!|~<>&$^:])")


def escape_markdown(value) -> str:
    """A value as literal text in Markdown and HTML: every character Markdown or HTML could
    read as markup is backslash-escaped (CommonMark lets any ASCII punctuation be), line
    breaks become spaces, and a value cannot start a block (it is always inline). ``<script>`` shows as ``<script>``; ``[x](javascript:...)`` as
    itself."""
    text = re.sub(r"[\r\n\u2028\u2029]+", " ", str(value))
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


class _PageChecker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.styles = 0

    def handle_starttag(self, tag, attrs):
        self._check(tag, attrs)

    def handle_startendtag(self, tag, attrs):
        self._check(tag, attrs)

    def _check(self, tag, attrs):
        svg_tag = _SVG_BY_LOWER.get(tag)
        name = svg_tag or tag
        if tag == "style":
            self.styles += 1
            if self.styles > 1:
                self.problems.append("a second <style> element (only the page's own is allowed)")
            return
        if name not in TAGS and tag not in PAGE_TAGS:
            self.problems.append(f"element <{tag}>")
            return
        allowed_lower = _allowed_lower(name, tag)
        for attr, value in attrs:
            if attr.lower() not in allowed_lower and not (name == "svg" and attr == "xmlns:xlink"):
                self.problems.append(f"attribute {attr} on <{tag}>")
            elif attr in _URL_ATTRIBUTES and value is not None and not safe_url(name, attr, value):
                self.problems.append(f"URL {value[:60]!r} in {attr} of <{tag}>")
            elif tag == "meta" and attr == "http-equiv" and (value or "").lower() not in HTTP_EQUIV:
                self.problems.append(f"<meta http-equiv={value!r}>")
            elif tag == "link" and attr == "rel" and (value or "").lower() != "alternate":
                self.problems.append(f"<link rel={value!r}> (only rel=alternate)")


@functools.lru_cache(maxsize=None)
def _allowed_lower(name: str, tag: str) -> frozenset:
    """The attributes allowed on an element (lower case): the same for each of a page's
    thousands of SVG elements, so made once per element name."""
    allowed = set(ATTRIBUTES.get("*", ())) | set(ATTRIBUTES.get(name, ())) | set(
        PAGE_ATTRIBUTES.get(tag, ()))
    return frozenset(a.lower() for a in allowed)


def page_violations(page: str) -> list[str]:
    """Everything in a whole page outside the allowlist: elements, attributes, URL schemes,
    a ``<meta http-equiv>`` other than the Content-Security-Policy. Empty for a good page."""
    checker = _PageChecker()
    checker.feed(page)
    checker.close()
    return checker.problems
