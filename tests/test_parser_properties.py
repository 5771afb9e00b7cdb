"""Every parser of outside data, attacked with generated input.

Invariants: never an exception other than the parser's own clear error, never a
path outside the destination, never a secret in what is shown or stored.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from civitai_tui.civitai.filenames import MAX_NAME_BYTES
from civitai_tui.civitai.layouts import LAYOUTS, LibraryLayout
from civitai_tui.civitai.targets import describe_target, parse_target
from civitai_tui.config import OPTIONS, ConfigError
from civitai_tui.download.naming import choose_filename, filename_from_disposition
from civitai_tui.download.responses import parse_content_range
from civitai_tui.download.retry import parse_retry_after
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import FileInfo
from civitai_tui.security.redact import mask_target
from civitai_tui.security.safetensors import check_safetensors

BASE = "https://civitai.com"
SECRET = "Zq9secretVALUE77"

#: Text an attacker would try in names and headers: traversal, separators, controls.
nasty = st.lists(
    st.sampled_from(
        [*"./\\:*?\"<>|%'; =\x00\x1b\n\r\t\u202e\u200b", "..", "a", "é", "CON", "~", "$"]
    ),
    max_size=40,
).map("".join)
any_text = st.one_of(st.text(max_size=60), nasty)

urls = st.builds(
    lambda scheme, host, path, key: f"{scheme}://{host}/{path}?{key}={SECRET}&x=1",
    st.sampled_from(["https", "http", "HTTPS", "ftp"]),
    st.sampled_from(["civitai.com", "files.example", "127.0.0.1", "[::1]", "0x7f.1", "a@b"]),
    st.text(alphabet=st.characters(exclude_characters="?#&=%"), max_size=20),
    st.sampled_from(["token", "api_key", "sig", "X-Amz-Signature", "access_token"]),
)


target_texts = st.one_of(
    any_text,
    st.builds(
        "{}:{}".format,
        st.sampled_from(["model", "version", "hash", "user", "tag", "search", "url"]),
        any_text,
    ),
)


@given(st.one_of(target_texts, urls))
def test_targets_parse_or_are_refused_clearly(text: str) -> None:
    try:
        target = parse_target(text, BASE)
    except CivitaiTuiError as err:
        assert err.kind is FailureKind.BAD_TARGET
        return
    describe_target(target)


@given(urls)
@example(f"https://civitai.com/m??token={SECRET}").via("found: a key after a stray '?'")
def test_a_url_target_never_shows_its_secret(url: str) -> None:
    assert SECRET not in mask_target(url)
    try:
        target = parse_target(url, BASE)
    except CivitaiTuiError as err:
        assert SECRET not in err.message
        return
    assert SECRET not in describe_target(target)


@given(any_text)
def test_content_range_parses_to_numbers_or_nothing(value: str) -> None:
    parsed = parse_content_range(value)
    if parsed is not None:
        assert parsed.start >= 0 and parsed.end >= 0
        assert parsed.total is None or parsed.total >= 0


@given(st.one_of(any_text, st.floats().map(str), st.integers().map(str)))
@example("inf").via("found by this test: an endless wait")
@example("1e999").via("found by this test")
def test_retry_after_is_a_finite_wait_or_nothing(value: str) -> None:
    seconds = parse_retry_after(value, now=0.0)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


dispositions = st.one_of(
    any_text,
    st.builds("attachment; filename={}".format, any_text),
    st.builds('attachment; filename="{}"'.format, any_text),
    st.builds("attachment; filename*=UTF-8''{}".format, any_text),
    st.builds("attachment; filename*={}'{}'{}".format, any_text, any_text, any_text),
)


def _single_safe_name(name: str) -> None:
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES


@given(dispositions, st.one_of(st.none(), any_text), st.text(max_size=30))
@example("attachment; filename*=a\x00b''y%41", None, "f").via("found: a NUL in the charset")
def test_file_names_from_any_server_are_one_safe_name(
    disposition: str, requested: str | None, path: str
) -> None:
    filename_from_disposition(disposition)  # never raises
    name = choose_filename(requested, disposition, None, f"https://s.example/{path}")
    _single_safe_name(name)


info_fields = st.fixed_dictionaries(
    {
        "model_name": any_text,
        "version_name": any_text,
        "model_type": any_text,
        "base_model": any_text,
        "creator": any_text,
        "model_id": st.one_of(st.none(), st.integers()),
        "file_id": st.one_of(st.none(), st.integers()),
    }
)


@given(st.sampled_from(LAYOUTS), info_fields, any_text)
def test_layouts_never_leave_the_destination(
    layout: str, fields: dict[str, Any], filename: str
) -> None:
    root = Path(tempfile.gettempdir()) / "civitai-layout-root"
    placer = LibraryLayout(
        root, layout, "{creator}/{model_name}/{version_name}/{base_model}/{file_name}"
    )
    try:
        path = placer.place(FileInfo(key="k", name=filename, **fields), filename)
    except CivitaiTuiError as err:
        assert err.kind is FailureKind.FILESYSTEM
        return
    assert path.resolve().is_relative_to(root.resolve())
    for part in path.relative_to(root).parts:
        _single_safe_name(part)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=12,
)
tensor_entries = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F16", "F32", "U8", "BOOL", "X9"]),
        "shape": st.lists(st.integers(-2, 4), max_size=3),
        "data_offsets": st.lists(st.integers(-2, 64), min_size=2, max_size=2),
    }
)
headers = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=4), st.one_of(tensor_entries, json_values), max_size=4).map(
        lambda d: json.dumps(d).encode()
    ),
    st.binary(max_size=64),
)


@given(headers, st.binary(max_size=64), st.integers(0, 1 << 64 - 1))
@example(b'{"t": {"dtype": [], "shape": [], "data_offsets": [0, 0]}}', b"", 0).via(
    "found: a list as dtype"
)
def test_safetensors_headers_are_valid_or_a_clear_format_error(
    header: bytes, data: bytes, declared: int
) -> None:
    for length in (len(header), declared):
        fd, name = tempfile.mkstemp(suffix=".safetensors")
        try:
            os.write(fd, struct.pack("<Q", length) + header + data)
            os.close(fd)
            check_safetensors(Path(name))
        except CivitaiTuiError as err:
            assert err.kind is FailureKind.INVALID_FORMAT
        finally:
            os.unlink(name)


@pytest.mark.parametrize("key", sorted(OPTIONS))
@given(raw=st.one_of(any_text, st.integers(), st.floats(), st.booleans()))
@example(raw="\x00").via("found: a NUL in network.ca_bundle")
@example(raw="~nobody-here-at-all/ca.pem").via("found: a home that does not exist")
def test_config_values_are_taken_or_refused_with_the_key(key: str, raw: Any) -> None:
    option = OPTIONS[key]
    try:
        value = option.coerce(raw)
    except ConfigError as err:
        assert key in err.message
        return
    assert option.coerce(value) == value  # a taken value is taken again as is
    if isinstance(value, float):
        assert math.isfinite(value)
