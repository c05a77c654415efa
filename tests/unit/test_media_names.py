"""Inbound media names can never choose a path; MIME types come from the bytes."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from wechat_sdk.inbound.media import safe_name, sniff_mime

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"


def check_safe(name: str, max_len: int = 80) -> None:
    assert name
    assert "/" not in name and "\\" not in name
    assert ".." not in name
    assert not name.startswith(".")
    assert len(name) <= max_len
    # 120 bytes (docs/media.md): with the random suffix, within what every file system
    # takes (255 bytes on ext4, 143 on eCryptfs)
    assert len(name.encode()) <= 120
    assert all(ch.isprintable() for ch in name)


@given(st.text(max_size=200))
@example("../../etc/passwd")
@example("..")
@example("a..b")
@example("x" * 200 + ".tar.gz")
@example("." * 90 + "a")
@example("a" * 69 + "..b" + ".txt")
@example("\U0001d400" * 100)  # letters of 4 bytes each in UTF-8 (mathematical bold A)
@example("\U00020000" * 70 + "." + "\U00020000" * 10)  # a CJK name with a CJK extension
@example("报告" * 60 + ".docx")
def test_safe_name_never_chooses_a_path(name: str) -> None:
    check_safe(safe_name(name))


@given(st.text(alphabet=st.sampled_from(list("./\\ab_-")), max_size=60))
def test_safe_name_on_separator_and_dot_soup(name: str) -> None:
    check_safe(safe_name(name))


@given(st.text(max_size=100), st.integers(min_value=12, max_value=100))
def test_safe_name_respects_max_len(name: str, max_len: int) -> None:
    check_safe(safe_name(name, max_len=max_len), max_len)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        (".bashrc", "bashrc"),
        ("", "file"),
        ("..", "file"),
        ("my report (final).pdf", "my_report_final_.pdf"),
        ("报告.docx", "报告.docx"),
        ("a\x00b.txt", "ab.txt"),
    ],
)
def test_safe_name_examples(name: str, expected: str) -> None:
    assert safe_name(name) == expected


def test_safe_name_keeps_a_short_extension() -> None:
    assert safe_name("x" * 300 + ".jpeg").endswith(".jpeg")
    assert len(safe_name("x" * 300 + ".jpeg")) <= 80


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (PDF, "application/pdf"),
        (b"\x02#!SILK_V3\x00\x01", "audio/silk"),  # WeChat voice
        (b"#!SILK_V3\x00\x01", "audio/silk"),  # SILK without the WeChat marker byte
    ],
)
def test_sniff_mime_from_headers(head: bytes, mime: str) -> None:
    assert sniff_mime(head + bytes(64)) == mime
    assert sniff_mime(head + bytes(64), fallback="text/plain") == mime  # content wins


def test_sniff_mime_falls_back_for_unknown_content() -> None:
    assert sniff_mime(b"just some text") == "application/octet-stream"
    assert sniff_mime(b"just some text", fallback="text/plain") == "text/plain"
    assert sniff_mime(b"") == "application/octet-stream"
