"""CivitAI's JSON of any shape becomes Browse records or a clean refusal, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from civitai_tui.browse.convert import commercial_use, detail, rating
from civitai_tui.browse.records import ModelDetail
from civitai_tui.civitai.images import sized_url

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
KEYS = (
    "id", "name", "description", "type", "nsfw", "allowNoCredit", "allowCommercialUse",
    "stats", "creator", "modelVersions",
)  # fmt: skip
VERSION_KEYS = ("id", "name", "baseModel", "publishedAt", "files", "images", "trainedWords")


def shaped(keys: tuple[str, ...], inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Dicts with the API's keys holding values of any type (and sometimes right ones)."""
    return st.fixed_dictionaries({}, optional={k: inner for k in keys})


images = shaped(("url", "nsfwLevel", "width", "height", "type"), json_values) | st.builds(
    dict,
    url=st.sampled_from(["https://image.civitai.com/a/b/width=450/1.jpeg", "javascript:x"]),
    nsfwLevel=st.sampled_from([1, 2, 16, "1", None]),
)
versions = shaped(VERSION_KEYS, json_values) | st.builds(
    dict,
    id=st.integers(1, 10**9),
    publishedAt=st.sampled_from(["2024-11-11T11:49:42.064Z", "yesterday", None]),
    images=st.lists(images, max_size=3),
    files=st.lists(shaped(("id", "name", "sizeKB", "metadata", "primary"), json_values)),
)
models = shaped(KEYS, json_values) | st.builds(
    dict,
    id=st.integers(1, 10**9),
    name=st.text(max_size=40),
    description=st.text(max_size=200),
    modelVersions=st.lists(versions, max_size=3),
    stats=st.dictionaries(st.sampled_from(["thumbsUpCount", "thumbsDownCount"]), json_values),
)


@given(models, st.sampled_from([1, 4, 31]))
def test_any_model_json_becomes_a_detail_or_a_value_error(data: Any, level: int) -> None:
    try:
        shown = detail(data, "https://civitai.com/models/1", level)
    except ValueError as refused:  # a model, version or file without its id: unreadable
        assert "without an integer id" in str(refused)
        return
    assert ModelDetail.from_dict(json.loads(json.dumps(shown.to_dict()))) == shown
    for version in shown.versions:
        assert all(i.nsfw_level <= level for i in version.images)
        assert all(i.url.startswith(("https://", "http://")) for i in version.images)
    assert shown.summary.rating is None or 0.0 <= shown.summary.rating <= 1.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{Image,RentCivit}", ("Image", "RentCivit")),
        (["Sell", 3, "Image"], ("Sell", "Image")),
        ("None", ()),
        ("{}", ()),
        (None, ()),
    ],
)
def test_commercial_use_reads_both_of_the_apis_spellings(value: Any, expected: tuple) -> None:
    assert commercial_use(value) == expected


def test_rating_is_the_share_of_thumbs_up() -> None:
    assert rating({"thumbsUpCount": 3, "thumbsDownCount": 1}) == 0.75
    assert rating({"thumbsUpCount": 0, "thumbsDownCount": 0}) is None
    assert rating({"thumbsUpCount": "9", "thumbsDownCount": True}) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://image.civitai.com/key/uuid/width=450/1.jpeg",
            "https://image.civitai.com/key/uuid/width=96/1.jpeg",
        ),
        (
            "https://image.civitai.com/key/uuid/original=true/1.jpeg",
            "https://image.civitai.com/key/uuid/width=96/1.jpeg",
        ),
        ("http://127.0.0.1:5/images/7.png", "http://127.0.0.1:5/images/width=96/7.png"),
        ("https://cdn.example/x.webp?sig=1", "https://cdn.example/width=96/x.webp?sig=1"),
    ],
)
def test_sized_url_asks_the_cdn_for_a_width(url: str, expected: str) -> None:
    assert sized_url(url, 96) == expected
