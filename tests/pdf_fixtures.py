"""Fixture PDFs generated with pymupdf, so PDF tests need no binary files.

Each builder writes a small PDF to the given path and returns it. The text
is made of distinct, checkable sentences ("left paragraph 2 sentence 3 ...")
so tests can find where each piece landed in the page text.
"""
from __future__ import annotations

from pathlib import Path

import pymupdf

PAGE_W, PAGE_H = 612, 792
MARGIN = 56


def sentence(tag: str, k: int) -> str:
    """A sentence long enough to wrap inside a column."""
    return (f"The {tag} sentence {k} explains how careful readers follow "
            f"the argument from one line to the next.")


def paragraph(tag: str, n: int = 4) -> str:
    return " ".join(sentence(tag, k) for k in range(1, n + 1))


def flow(page: pymupdf.Page, blocks: list[tuple[str, float, str]], y: float = MARGIN,
         x0: float = MARGIN, x1: float = PAGE_W - MARGIN, gap: float = 10) -> float:
    """Write (text, fontsize, fontname) blocks top-down; returns the next y."""
    for text, size, font in blocks:
        rect = pymupdf.Rect(x0, y, x1, PAGE_H - MARGIN)
        rest = page.insert_textbox(rect, text, fontsize=size, fontname=font)
        if rest < 0:
            raise ValueError(f"text does not fit: {text[:40]!r}")
        y += rect.height - rest + gap
    return y


def body(text: str) -> tuple[str, float, str]:
    return (text, 10, "helv")


def two_column(path: Path) -> Path:
    """A full-width title over two columns of three paragraphs each."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    page.insert_textbox(pymupdf.Rect(MARGIN, 50, PAGE_W - MARGIN, 90),
                        "A Study of Reading Order", fontsize=20, fontname="hebo", align=1)
    mid = PAGE_W / 2
    flow(page, [body(paragraph(f"left paragraph {p}", 3)) for p in (1, 2, 3)],
         y=110, x0=MARGIN, x1=mid - 12)
    flow(page, [body(paragraph(f"right paragraph {p}", 3)) for p in (1, 2, 3)],
         y=110, x0=mid + 12, x1=PAGE_W - MARGIN)
    doc.save(path)
    return path


HEADINGS = [  # (level, text on the page, outline title, page)
    (1, "1 Introduction", "Introduction", 1),
    (2, "1.1 Background", "Background", 1),
    (1, "2 Methods", "Methods", 2),
    (2, "2.1 Data collection", "Data collection", 2),
    (1, "3 Results", "Results", 3),
    (1, "4 Discussion", "Discussion", 3),
]


def headings(path: Path, toc: bool = True) -> Path:
    """Three pages: numbered headings in larger bold type, body text, an
    outline (when `toc`), a section continuing over a page break and a lone
    heading at the very end of the last page."""
    h1 = lambda t: (t, 16, "hebo")  # noqa: E731
    h2 = lambda t: (t, 13, "hebo")  # noqa: E731
    doc = pymupdf.open()
    p1 = doc.new_page(width=PAGE_W, height=PAGE_H)
    flow(p1, [h1("1 Introduction"), body(paragraph("introduction", 5)),
              h2("1.1 Background"), body(paragraph("background one", 6)),
              body(paragraph("background two", 6)), body(paragraph("background three", 6))])
    p2 = doc.new_page(width=PAGE_W, height=PAGE_H)
    flow(p2, [body(paragraph("background continued", 4)),
              h1("2 Methods"), body(paragraph("methods", 5)),
              h2("2.1 Data collection"), body(paragraph("data collection", 5))])
    p3 = doc.new_page(width=PAGE_W, height=PAGE_H)
    flow(p3, [h1("3 Results"), body(paragraph("results one", 5)),
              body(paragraph("results two", 3)), h1("4 Discussion")])
    if toc:
        doc.set_toc([[lvl, title, pno] for lvl, _, title, pno in HEADINGS])
    doc.save(path)
    return path


def words(tag: str, n: int) -> str:
    """`n` plain words (about one token each), the first being `tag`."""
    filler = ["data", "values", "are", "given", "as", "numeric", "columns", "of", "the",
              "matrix", "and", "each", "row", "holds", "one", "case"]
    return " ".join([tag] + [filler[k % len(filler)] for k in range(n - 1)]) + "."


MANUAL = [(1, "The demo package"), (2, "kmeans"), (2, "hclust")]  # the outline


def manual_entry(path: Path, toc: bool = True) -> Path:
    """One page shaped like an R reference manual: a chapter heading and two
    entries (outline entries when `toc`), each with bold body-size
    sub-headings over a few words, and one large sub-section ("Details").
    Headings, "Description" (28 words), "Usage" (10) and "Arguments" (15)
    come to 54 tokens before "Arguments" and 73 before "Details"."""
    sub = lambda t: (t, 10, "hebo")  # noqa: E731
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    flow(page, [("The demo package", 18, "hebo"),
                ("kmeans K-Means Clustering", 14, "hebo"),
                sub("Description"), body(words("kmdescription", 28)),
                sub("Usage"), body(words("kmusage", 10)),
                sub("Arguments"), body(words("kmarguments", 15)),
                sub("Details"), body(words("kmdetails", 200)),
                sub("See Also"), body(words("kmseealso", 6)),
                sub("Examples"), body(words("kmexamples", 8)),
                ("hclust Hierarchical Clustering", 14, "hebo"),
                sub("Usage"), body(words("hcusage", 10)),
                sub("Value"), body(words("hcvalue", 8))])
    if toc:
        doc.set_toc([[level, title, 1] for level, title in MANUAL])
    doc.save(path)
    return path


TABLE = [["Fruit", "Colour", "Price"],
         ["Apple", "Red", "1.20"],
         ["Banana", "Yellow", "0.50"],
         ["Cherry", "Dark red", "3.10"]]


def ruled_table(path: Path, x0: float = 100, y0: float = 250,
                rows: list[list[str]] | None = None, row_h: float = 22) -> Path:
    """A paragraph, a table ruled on every cell edge (`rows`, the first
    the header in bold; default the 4x3 TABLE), another paragraph."""
    rows = rows or TABLE
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    flow(page, [body(paragraph("before table", 3))], y=MARGIN)
    col_w = 130
    n_rows, n_cols = len(rows), len(rows[0])
    for r in range(n_rows + 1):
        y = y0 + r * row_h
        page.draw_line((x0, y), (x0 + n_cols * col_w, y), width=0.8)
    for c in range(n_cols + 1):
        x = x0 + c * col_w
        page.draw_line((x, y0), (x, y0 + n_rows * row_h), width=0.8)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            page.insert_text((x0 + c * col_w + 6, y0 + r * row_h + row_h * 0.7), cell,
                             fontsize=min(10, row_h * 0.6), fontname="hebo" if r == 0 else "helv")
    flow(page, [body(paragraph("after table", 3))], y=y0 + n_rows * row_h + 30)
    doc.save(path)
    return path


STACKED = [["Offense", "Total", "Male", "Female"],
           ["Murder", "10.0", "9.0", "1.1"], ["Forcible rape", "17.5", "17.2", "0.3"],
           ["Robbery", "102.1", "90.0", "12.1"], ["Aggravated assault", "338.4", "264.0", "74.4"],
           ["Burglary", "240.9", "205.0", "35.9"], ["Larceny-theft", "1,080.1", "608.8", "471.3"],
           ["Motor vehicle theft", "65.6", "53.9", "11.7"], ["Arson", "9.8", "8.1", "1.7"]]


def stacked_table(path: Path, x0: float = 80, y0: float = 200, row_h: float = 14) -> Path:
    """A table ruled as statistical abstracts are: rules above and below the
    header and at the bottom, column rules the whole height, none between
    the body rows (pymupdf's finder reads the body as one row)."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    flow(page, [body(paragraph("before stacked", 2))], y=MARGIN)
    widths = [160, 90, 90, 90]
    edges = [x0 + sum(widths[:k]) for k in range(len(widths) + 1)]
    bottom = y0 + row_h * (len(STACKED) + 0.5)
    for y in (y0, y0 + row_h * 1.3, bottom):
        page.draw_line((edges[0], y), (edges[-1], y), width=0.8)
    for x in edges:
        page.draw_line((x, y0), (x, bottom), width=0.8)
    for r, row in enumerate(STACKED):
        y = y0 + row_h * (r + 0.9) + (row_h * 0.3 if r else 0)
        for c, cell in enumerate(row):
            page.insert_text((edges[c] + 5, y), cell, fontsize=9,
                             fontname="hebo" if r == 0 else "helv")
    flow(page, [body(paragraph("after stacked", 2))], y=bottom + 30)
    doc.save(path)
    return path


def aligned_table(path: Path) -> Path:
    """An unruled table: rows of cells aligned in columns, no lines."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    y = flow(page, [body(paragraph("intro", 2))])
    rows = [["Planet", "Moons", "Radius km"], ["Mercury", "0", "2440"],
            ["Venus", "0", "6052"], ["Earth", "1", "6371"], ["Mars", "2", "3390"]]
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            page.insert_text((MARGIN + 150 * c, y + 20 + 14 * r), cell, fontsize=10)
    doc.save(path)
    return path


def bullets(path: Path) -> Path:
    """An intro paragraph followed by a bullet list and a numbered list."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    items = [body(f"- Bullet item {k} names one thing the reader must bring along.")
             for k in range(1, 6)]
    numbered = [body(f"{k}. Numbered step {k} says what to do next, in order.")
                for k in range(1, 5)]
    flow(page, [body(paragraph("list intro", 2))] + items + numbered, gap=4)
    doc.save(path)
    return path


def _image_page(doc: pymupdf.Document) -> None:
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 120, 160), False)
    pix.set_rect(pix.irect, (200, 200, 190))
    pix.set_rect(pymupdf.IRect(10, 10, 110, 30), (20, 20, 20))  # a dark "line"
    page.insert_image(page.rect, pixmap=pix)


def with_scans(path: Path) -> Path:
    """Page 1 has text; pages 2 and 3 are images only (like scans)."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    flow(page, [body(paragraph("typed page", 4))])
    _image_page(doc)
    _image_page(doc)
    doc.save(path)
    return path


def simple(path: Path, pages: int = 1, **save: object) -> Path:
    """`pages` pages of plain paragraphs; `save` options go to Document.save."""
    doc = pymupdf.open()
    for n in range(1, pages + 1):
        page = doc.new_page(width=PAGE_W, height=PAGE_H)
        flow(page, [body(paragraph(f"page {n} paragraph {k}", 4)) for k in (1, 2, 3)])
    doc.set_metadata({"title": "Simple Fixture"})
    doc.save(path, **save)
    return path


def encrypted(path: Path, user_pw: str = "user-secret", owner_pw: str = "owner-secret") -> Path:
    return simple(path, encryption=pymupdf.PDF_ENCRYPT_AES_256,
                  user_pw=user_pw, owner_pw=owner_pw)


def truncated(path: Path, keep: float = 0.5) -> Path:
    """A saved PDF cut after `keep` of its bytes."""
    doc = pymupdf.open()
    for n in range(1, 4):
        flow(doc.new_page(), [body(paragraph(f"truncated {n}", 3))])
    data = doc.tobytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def zero_pages(path: Path) -> Path:
    """A syntactically valid PDF whose page tree is empty."""
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
                     b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
                     b"trailer << /Root 1 0 R >>\n%%EOF\n")
    return path


def rotated(path: Path) -> Path:
    """A landscape-rotated page (/Rotate 90) with text."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_W, height=PAGE_H)
    flow(page, [body(paragraph("rotated", 4))])
    page.set_rotation(90)
    doc.save(path)
    return path


# --- checks shared by the PDF tests -----------------------------------------

def check_spans(doc) -> None:
    """Every segment is an exact slice of its page text, and its boxes are
    lines of that slice lying on the page."""
    for seg in doc.segments:
        page = doc.pages[seg.page - 1]
        assert page.text[seg.char_start:seg.char_end] == seg.text, (seg.page, seg.text[:60])
        assert seg.text.strip() == seg.text and seg.text, (seg.page, seg.text[:60])
        assert seg.boxes, (seg.page, seg.text[:60])
        for box in seg.boxes:
            assert seg.char_start <= box.start < box.end <= seg.char_end, (box, seg.char_start)
            line = page.text[box.start:box.end]
            assert line.strip() == line and "\n" not in line, (seg.page, line)
            assert 0 <= box.x0 <= box.x1 <= page.width + 0.01, (box, page.width)
            assert 0 <= box.y0 <= box.y1 <= page.height + 0.01, (box, page.height)


def check_sizes(doc, min_tokens: int = 60, max_tokens: int = 350) -> list:
    """Segments outside min..max tokens that are not documented exceptions:
    a table, a lone heading, the last segment of a page or section, or one
    closed early because a table follows."""
    bad = []
    segs = doc.segments
    for k, seg in enumerate(segs):
        if seg.kind == "table":
            continue
        if seg.tokens > max_tokens:
            bad.append(seg)
            continue
        if seg.tokens >= min_tokens or seg.kind == "heading":
            continue
        nxt = segs[k + 1] if k + 1 < len(segs) else None
        if (nxt is None or nxt.page != seg.page or nxt.section != seg.section
                or nxt.kind == "table"):
            continue
        bad.append(seg)
    return bad
