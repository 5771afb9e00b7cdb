"""Secret masking: URLs, headers, registered secrets, and what must stay untouched."""

from __future__ import annotations

import logging

from civitai_tui.security.redact import (
    MASK,
    RedactingFilter,
    mask_headers,
    mask_text,
    mask_url,
    register_secret,
)

SHA256 = "A5F58EB1C33616C4F06BCA55AF39876A7B817913CD829CAA8ACB111B770C85CC"


def test_token_in_url_query_is_masked() -> None:
    text = mask_text("GET https://civitai.com/api/download/models/1?token=abcdef123456&fileId=7")
    assert "abcdef123456" not in text and "token=***" in text and "fileId=7" in text


def test_mask_url_drops_credentials_fragment_and_signatures() -> None:
    url = "https://user:pw@s.example/f/1?X-Amz-Signature=deadbeef&expires=99&sig=c0ffee#frag"
    masked = mask_url(url)
    assert masked.startswith("https://s.example/f/1?")
    assert "deadbeef" not in masked and "c0ffee" not in masked and "pw" not in masked
    assert "expires=99" in masked and "frag" not in masked


def test_authorization_headers_in_text_and_dicts() -> None:
    assert mask_text("Authorization: Bearer s3cr3t-token") == f"Authorization: Bearer {MASK}"
    assert "s3cr3t" not in mask_text("{'authorization': 'Bearer s3cr3t-token'}")
    assert "s3cr3t" not in mask_text("sent bearer s3cr3t-token to the API")
    headers = mask_headers({"Authorization": "Bearer s3cr3t", "Range": "bytes=0-"})
    assert headers == {"Authorization": MASK, "Range": "bytes=0-"}


def test_registered_secret_is_masked_whatever_its_shape() -> None:
    register_secret("Zq-odd_Shaped.Secret!")
    assert mask_text("oops Zq-odd_Shaped.Secret! leaked") == f"oops {MASK} leaked"
    register_secret("abc")  # too short to register: would mask ordinary words
    assert mask_text("abc") == "abc"


def test_a_secret_containing_a_shorter_registered_one_is_masked_whole() -> None:
    # Registration order decided the result before (set order: hash-seed dependent).
    register_secret("inner-part")
    register_secret("outer-inner-part-tail")
    register_secret("also-short")
    text = mask_text("x outer-inner-part-tail y inner-part z")
    assert text == f"x {MASK} y {MASK} z"
    assert "tail" not in text


def test_bare_civitai_key_masked_but_hashes_untouched() -> None:
    assert mask_text("key 0f1e2d3c4b5a69788796a5b4c3d2e1f0 end") == f"key {MASK} end"
    assert mask_text(f"sha256 {SHA256}") == f"sha256 {SHA256}"
    assert mask_text(f"sha256 {SHA256.lower()}") == f"sha256 {SHA256.lower()}"
    assert mask_text("CIVITAI_API_KEY=whatever123") == f"CIVITAI_API_KEY={MASK}"


def test_redacting_filter_masks_message_args_and_exception() -> None:
    record = logging.LogRecord(
        "t",
        logging.INFO,
        __file__,
        1,
        "token=%s url=%s",
        ("abc123secret", "http://h/?sig=zz9"),
        None,
    )
    try:
        raise RuntimeError("Authorization: Bearer hunter2hunter2")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "abc123secret" not in text and "zz9" not in text and "hunter2" not in text
    assert "RuntimeError" in text
