"""Pure HTTP checks: Content-Disposition names, Content-Range, body sniffing, status mapping."""

from __future__ import annotations

import pytest

from civitai_tui.download.naming import choose_filename, filename_from_disposition
from civitai_tui.download.responses import (
    check_partial,
    parse_content_range,
    sniff_body,
    status_error,
)
from civitai_tui.errors import CivitaiTuiError, FailureKind


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('attachment; filename="model.safetensors"', "model.safetensors"),
        ("attachment; filename=plain.ckpt", "plain.ckpt"),
        ("attachment; filename=\"a.bin\"; filename*=UTF-8''%C3%A9t%C3%A9.bin", "été.bin"),
        ('attachment; filename="caf\u00c3\u00a9.pt"', "café.pt"),  # raw UTF-8 read as Latin-1
        ('attachment; filename="café.pt"', "café.pt"),
        ('attachment; filename="say \\"hi\\".gguf"', 'say "hi".gguf'),
        ("attachment", None),
        (None, None),
    ],
)
def test_filename_from_disposition(header: str | None, name: str | None) -> None:
    assert filename_from_disposition(header) == name


def test_choose_filename_is_always_one_safe_component() -> None:
    assert choose_filename(None, 'attachment; filename="../../etc/passwd"', None, "") == (
        "____etc_passwd"
    )
    assert choose_filename(None, None, None, "http://h/files/9/my%20lora.safetensors?sig=x") == (
        "my lora.safetensors"
    )
    assert choose_filename("CON.safetensors", None, None, "") == "_CON.safetensors"
    assert choose_filename(None, None, None, "http://h/") == "download.bin"


def test_content_range_checks() -> None:
    assert parse_content_range("bytes 0-99/1000") is not None
    headers = {"Content-Range": "bytes 100-199/1000", "Content-Length": "100"}
    assert check_partial(headers, 100, 200, 1000).total == 1000
    with pytest.raises(CivitaiTuiError, match="asked for bytes 101-199"):
        check_partial(headers, 101, 200, 1000)
    with pytest.raises(CivitaiTuiError, match="1000 bytes now"):
        check_partial(headers, 100, 200, 999)
    with pytest.raises(CivitaiTuiError, match="Content-Length 99"):
        check_partial({**headers, "Content-Length": "99"}, 100, 200, 1000)
    tail = {"Content-Range": "bytes 900-999/1000"}
    assert check_partial(tail, 900, 4000, None).end == 999  # a probe past the end


@pytest.mark.parametrize(
    "body", [b"<!DOCTYPE html><html>", b"  <html><body>login", b'{"error":"Unauthorized"}']
)
def test_pages_are_never_taken_for_files(body: bytes) -> None:
    with pytest.raises(CivitaiTuiError) as info:
        sniff_body(body)
    assert info.value.kind is FailureKind.BAD_CONTENT


def test_model_bytes_pass_sniffing() -> None:
    sniff_body(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    sniff_body(b"PK\x03\x04")


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (401, FailureKind.AUTH_REQUIRED, False),
        (403, FailureKind.FORBIDDEN, False),
        (404, FailureKind.NOT_FOUND, False),
        (410, FailureKind.GONE, False),
        (429, FailureKind.RATE_LIMITED, True),
        (503, FailureKind.RATE_LIMITED, True),
        (500, FailureKind.SERVER, True),
    ],
)
def test_status_errors(status: int, kind: FailureKind, retryable: bool) -> None:
    err = status_error(status, {"Retry-After": "3"}, "host")
    assert err.kind is kind and err.retryable is retryable and err.status == status
    if kind is FailureKind.RATE_LIMITED:
        assert err.retry_after == 3
