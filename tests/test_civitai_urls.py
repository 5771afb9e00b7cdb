"""URL safety rules, signed-URL expiry/file names, and safe file names."""

from __future__ import annotations

import pytest

from civitai_tui.civitai.filenames import MAX_NAME_BYTES, safe_filename
from civitai_tui.civitai.signed_urls import (
    filename_from_disposition,
    filename_from_url,
    signed_url_expiry,
)
from civitai_tui.civitai.urls import check_redirect, check_url, same_origin
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.net.policy import is_internal_host as is_internal
from civitai_tui.net.policy import is_loopback_host as is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("api.localhost", True),
        ("10.0.0.1", False),
        ("civitai.com", False),
        ("localhost.evil.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "internal"),
    [
        ("10.1.2.3", True),
        ("192.168.1.1", True),
        ("172.16.0.1", True),
        ("169.254.169.254", True),
        ("fe80::1", True),
        ("0.0.0.0", True),
        ("::ffff:10.0.0.1", True),
        ("127.0.0.1", True),
        ("8.8.8.8", False),
        ("2606:4700::1111", False),
        ("b2.example.com", False),
    ],
)
def test_is_internal(host: str, internal: bool) -> None:
    assert is_internal(host) is internal


def test_check_url_accepts_https_and_loopback_http() -> None:
    assert check_url("https://civitai.com/x") == "https://civitai.com/x"
    assert check_url("http://127.0.0.1:9/x") == "http://127.0.0.1:9/x"
    assert check_url("http://localhost/x") == "http://localhost/x"
    assert check_url("http://[::1]:8080/x") == "http://[::1]:8080/x"
    assert check_url("http://example.org/x", allow_http=True) == "http://example.org/x"


def test_check_url_refuses_plain_http_to_remote_hosts() -> None:
    with pytest.raises(CivitaiTuiError) as info:
        check_url("http://example.org/model.safetensors?token=abcdefsecret")
    assert info.value.kind is FailureKind.INSECURE_URL
    assert "--allow-http" in info.value.message
    assert "abcdefsecret" not in info.value.message


@pytest.mark.parametrize(
    "url", ["ftp://example.org/x", "file:///etc/passwd", "javascript:alert(1)"]
)
def test_check_url_refuses_other_schemes(url: str) -> None:
    with pytest.raises(CivitaiTuiError) as info:
        check_url(url, allow_http=True)
    assert info.value.kind is FailureKind.INSECURE_URL


def test_check_url_needs_a_host() -> None:
    with pytest.raises(CivitaiTuiError) as info:
        check_url("https:///path")
    assert info.value.kind is FailureKind.BAD_TARGET


def test_same_origin_fills_default_ports() -> None:
    assert same_origin("https://civitai.com/a", "https://CIVITAI.com:443/b?x=1")
    assert not same_origin("https://civitai.com/a", "http://civitai.com/a")
    assert not same_origin("http://127.0.0.1:1000/a", "http://127.0.0.1:1001/a")
    assert not same_origin("https://civitai.com/", "https://civitai.com.evil.org/")


def test_redirects_public_to_public_and_relative() -> None:
    assert check_redirect(
        "https://civitai.com/api/download/models/1", "https://b2.example.com/f"
    ) == ("https://b2.example.com/f")
    assert (
        check_redirect("https://civitai.com/api/x", "/login?a=1") == "https://civitai.com/login?a=1"
    )
    assert check_redirect("http://127.0.0.1:5/a", "http://127.0.0.1:6/b") == "http://127.0.0.1:6/b"


@pytest.mark.parametrize(
    "target",
    [
        "https://127.0.0.1/admin",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.8/x",
        "https://[::1]/x",
        "https://localhost/x",
    ],
)
def test_redirect_from_public_to_internal_is_refused(target: str) -> None:
    with pytest.raises(CivitaiTuiError) as info:
        check_redirect("https://civitai.com/api/download/models/1", target)
    assert info.value.kind is FailureKind.INSECURE_URL
    assert "internal address" in info.value.message


@pytest.mark.parametrize(
    "target", ["http://b2.example.com/f", "ftp://b2.example.com/f", "file:///etc/passwd"]
)
def test_redirect_downgrade_or_odd_scheme_is_refused(target: str) -> None:
    with pytest.raises(CivitaiTuiError) as info:
        check_redirect("https://civitai.com/api/download/models/1", target)
    assert info.value.kind is FailureKind.INSECURE_URL


def test_signed_url_expiry_forms() -> None:
    assert signed_url_expiry("http://s/files/1/a?expires=1700000000&sig=x") == 1700000000.0
    s3 = "https://r2/x?X-Amz-Date=20240201T120000Z&X-Amz-Expires=86400&X-Amz-Signature=abc"
    assert signed_url_expiry(s3) == 1706788800.0 + 86400
    assert signed_url_expiry("https://example.org/x.bin") is None
    assert signed_url_expiry("https://r2/x?X-Amz-Date=garbage&X-Amz-Expires=5") is None


def test_filename_from_url() -> None:
    real = (
        "https://civitai-delivery-worker-prod.acct.r2.cloudflarestorage.com/model/2515131/"
        "photoasianv2.aL6R.safetensors?X-Amz-Expires=86400&response-content-disposition="
        "attachment%3B%20filename%3D%22photoAsian_v20.safetensors%22&X-Amz-Signature=abc"
    )
    assert filename_from_url(real) == "photoAsian_v20.safetensors"
    assert (
        filename_from_url("http://s/files/7/caf%C3%A9%20v1.safetensors?expires=1")
        == "café v1.safetensors"
    )
    assert filename_from_url("https://example.org/") is None
    assert filename_from_disposition("attachment; filename=plain.bin") == "plain.bin"
    assert filename_from_disposition("inline") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model.safetensors", "model.safetensors"),
        ("../../etc/passwd", "____etc_passwd"),
        ("a/b\\c.ckpt", "a_b_c.ckpt"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1.safetensors", "_com1.safetensors"),
        ("bad\x00na\x1bme\x7f.pt", "bad_na_me_.pt"),
        ("  .hidden. ", "hidden"),
        ("", "download"),
        ("..", "_"),
        ("café ☕.safetensors", "café ☕.safetensors"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_shortens_keeping_extension() -> None:
    long = "é" * 300 + ".safetensors"
    safe = safe_filename(long)
    assert len(safe.encode("utf-8")) <= MAX_NAME_BYTES
    assert safe.endswith(".safetensors") and safe.startswith("é")
    assert len(safe_filename("x" * 500).encode()) == MAX_NAME_BYTES
