"""Bytes to text: encodings, binary detection, and line numbering."""
from __future__ import annotations

import codecs
import random

import pytest

from ingest.decode import LineIndex, decode_text, looks_binary
from ingest.errors import BinaryFile, EmptyDocument, UnreadableEncoding

TEXT = "Grüße aus Köln – naïve café\nzweite Zeile\n"


@pytest.mark.parametrize("data, encoding", [
    (TEXT.encode("utf-8"), "utf-8"),
    (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
    (TEXT.encode("utf-16"), "utf-16"),                      # BOM, native order
    (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
    (TEXT.encode("utf-32"), "utf-32"),
    (TEXT.encode("utf-16-le"), "utf-16-le"),                # no BOM
    (TEXT.encode("utf-16-be"), "utf-16-be"),
])
def test_unicode_encodings(data: bytes, encoding: str) -> None:
    text, found = decode_text("f.txt", data)
    assert text == TEXT                                     # BOM never reaches the text
    assert found == encoding


def test_latin1_text() -> None:
    text = "Die Größe der Straße ist übermäßig, sagt Jürgen.\n"
    decoded, encoding = decode_text("f.txt", text.encode("latin-1"))
    assert decoded == text
    assert encoding in ("cp1252", "latin_1")


def test_cp1252_punctuation_is_not_mistaken_for_a_dos_code_page() -> None:
    text = "He said \u201chello\u201d \u2013 it costs 5\u20ac.\n"
    assert decode_text("f.txt", text.encode("cp1252")) == (text, "cp1252")


def test_coding_cookie_is_honoured() -> None:
    text = "# -*- coding: iso-8859-15 -*-\nprice = '5 \u20ac'\n"
    decoded, encoding = decode_text("f.py", text.encode("iso-8859-15"))
    assert decoded == text and encoding == "iso8859-15"


def test_other_legacy_scripts() -> None:
    text = "Привет мир, это тест кодировки для проверки.\n"
    assert decode_text("f.txt", text.encode("cp1251"))[0] == text


def test_empty_file() -> None:
    with pytest.raises(EmptyDocument):
        decode_text("f.txt", b"")


@pytest.mark.parametrize("data", [
    b"%PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
    b"print('hi')\n\x00\x00\x00\x01\x02\x03",
    bytes(range(1, 32)) * 20,                               # control bytes, no NUL
])
def test_binary_content(data: bytes) -> None:
    assert looks_binary(data)
    with pytest.raises(BinaryFile, match="binary"):
        decode_text("f.py", data)


def test_utf16_is_not_binary_for_the_sniffer() -> None:
    assert not looks_binary(TEXT.encode("utf-16-le"))
    assert not looks_binary(TEXT.encode("utf-16"))
    assert not looks_binary("tab\tand form feed\x0c and ESC\x1b[0m colours\n".encode())


def test_unrecognisable_bytes() -> None:
    rng = random.Random(1)
    data = bytes(rng.randrange(0x80, 0x100) for _ in range(400))
    with pytest.raises(UnreadableEncoding, match="UTF-8"):
        decode_text("f.txt", data)


def test_bad_data_after_a_bom() -> None:
    with pytest.raises(UnreadableEncoding):
        decode_text("f.txt", codecs.BOM_UTF16_LE + b"a\x00\x00\xd8")


def test_line_index_breaks_like_python() -> None:
    text = "one\r\ntwo\rthree\nfour\x0cstill four\nfive"
    index = LineIndex(text)
    assert [index.line(i) for i in range(len(index))] == [
        "one", "two", "three", "four\x0cstill four", "five"]
    assert index.span(0, 1) == (0, 8)
    assert text[slice(*index.span(2, 3))] == "three\nfour\x0cstill four"
    assert index.line_of(text.index("five")) == 4


def test_line_of_byte_with_multibyte_characters() -> None:
    text = "é€\n𝄞x\nlast\n"
    index = LineIndex(text)
    data = text.encode("utf-8")
    assert index.line_of_byte(data.index(b"x")) == 1
    assert index.line_of_byte(data.index(b"last")) == 2
    assert index.line_of_byte(0) == 0
