"""Target parsing: every accepted form and every rejection, with its message."""

from __future__ import annotations

from pathlib import Path

import pytest

from civitai_tui.civitai.targets import (
    FileSpec,
    HashTarget,
    ModelTarget,
    SearchTarget,
    TagTarget,
    UrlTarget,
    UserTarget,
    VersionTarget,
    describe_target,
    expand_target_args,
    parse_target,
)
from civitai_tui.errors import CivitaiTuiError, FailureKind

BASE = "https://civitai.com"
SHA = "21437EC26670E230B067CA936F6657CAF5CA063F15AEC333EF249BEC7C0F0DC0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://civitai.com/models/123", ModelTarget(123)),
        ("https://civitai.com/models/123/some-slug", ModelTarget(123)),
        ("https://www.civitai.com/models/123?modelVersionId=456", ModelTarget(123, 456)),
        ("civitai.com/models/7/x", ModelTarget(7)),
        ("https://civitai.com/model-versions/456", VersionTarget(456)),
        ("https://civitai.com/api/download/models/456", VersionTarget(456)),
        ("https://civitai.com/api/download/models/456?fileId=789", VersionTarget(456, 789)),
        (
            "https://civitai.com/api/download/models/456?type=Model&format=SafeTensor&size=pruned&fp=fp16",
            VersionTarget(456, file_spec=FileSpec("Model", "SafeTensor", "pruned", "fp16")),
        ),
        ("https://civitai.com/user/alice/models", UserTarget("alice")),
        ("https://civitai.com/tag/anime", TagTarget("anime")),
        ("model:123", ModelTarget(123)),
        ("  MODEL: 123 ", ModelTarget(123)),
        ("model:123@456", ModelTarget(123, 456)),
        ("version:456", VersionTarget(456)),
        ("version:2147483647", VersionTarget(2147483647)),
        (f"hash:{SHA.lower()}", HashTarget(SHA)),
        ("hash:88828ae7", HashTarget("88828AE7")),
        ("hash:21437EC266", HashTarget("21437EC266")),
        ("hash:7AAE878CB805", HashTarget("7AAE878CB805")),
        ("urn:air:flux1:lora:civitai:706978@1050496", ModelTarget(706978, 1050496)),
        ("urn:air:sdxl:checkpoint:civitai:5", ModelTarget(5)),
        (
            "https://example.org/files/model.safetensors",
            UrlTarget("https://example.org/files/model.safetensors"),
        ),
        ("http://10.0.0.5/a.bin", UrlTarget("http://10.0.0.5/a.bin")),
        ("user:alice", UserTarget("alice")),
        ("tag:anime style", TagTarget("anime style")),
        ('search:"pony xl"', SearchTarget("pony xl")),
        ("search:'pony'", SearchTarget("pony")),
        ("search:pony xl", SearchTarget("pony xl")),
    ],
)
def test_accepted_forms(text: str, expected: object) -> None:
    assert parse_target(text, BASE) == expected


def test_base_url_origin_counts_as_civitai() -> None:
    base = "http://127.0.0.1:8123"
    assert parse_target("http://127.0.0.1:8123/models/9?modelVersionId=10", base) == ModelTarget(
        9, 10
    )
    # Another port on the same host is a different origin: a plain file URL.
    assert parse_target("http://127.0.0.1:9000/models/9", base) == UrlTarget(
        "http://127.0.0.1:9000/models/9"
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("123", "write model:123 or version:123"),
        ("model:abc", "write model:ID"),
        ("model:0", "out of range"),
        ("version:2147483648", "out of range"),
        ("version:-5", "not a number"),
        ("version:", "not a number"),
        ("hash:XYZ12345", "hex digits"),
        ("hash:abcdef1", "hex digits"),
        ("user:", "user name is empty"),
        ('search:""', "search query is empty"),
        ("https://civitai.com/images/55", "not a model, version or download link"),
        ("https://civitai.com/models/abc", "model id 'abc' is not a number"),
        ("https://civitai.com/models/1?modelVersionId=0", "out of range"),
        ("ftp://example.org/x.bin", "only http:// and https://"),
        ("collection:5", "unknown form"),
        ("C:\\models\\x.safetensors", "unknown form"),
    ],
)
def test_rejections_quote_input_and_list_forms(text: str, why: str) -> None:
    with pytest.raises(CivitaiTuiError) as info:
        parse_target(text, BASE)
    err = info.value
    assert err.kind is FailureKind.BAD_TARGET
    assert why in err.message
    assert repr(text.strip()) in err.message
    assert "model:123@456" in err.message and "search:" in err.message


def test_rejection_message_masks_a_token_in_the_input() -> None:
    with pytest.raises(CivitaiTuiError) as info:
        parse_target("https://civitai.com/images/1?token=supersecretvalue", BASE)
    assert "supersecretvalue" not in str(info.value)


def test_describe_target_is_short_and_masked() -> None:
    assert describe_target(ModelTarget(1, 2)) == "model:1@2"
    assert describe_target(VersionTarget(3, 4)) == "version:3 (file 4)"
    assert "s3cr3tvalue" not in describe_target(UrlTarget("https://h/x.bin?token=s3cr3tvalue"))
    assert describe_target(SearchTarget("a b")) == "search:'a b'"


def test_expand_target_args_reads_files(tmp_path: Path) -> None:
    listing = tmp_path / "targets.txt"
    listing.write_text("# my list\nmodel:1\n\n  version:2  \n# done\nhash:88828AE7\n")
    assert expand_target_args(["user:bob", f"@{listing}", "tag:x"]) == [
        "user:bob",
        "model:1",
        "version:2",
        "hash:88828AE7",
        "tag:x",
    ]


def test_expand_target_args_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(CivitaiTuiError) as info:
        expand_target_args([f"@{missing}"])
    assert info.value.kind is FailureKind.BAD_TARGET
    assert str(missing) in info.value.message and "readable" in info.value.message


def test_expand_target_args_binary_file(tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\xff\xfe\x00model")
    with pytest.raises(CivitaiTuiError) as info:
        expand_target_args([f"@{blob}"])
    assert info.value.kind is FailureKind.BAD_TARGET
