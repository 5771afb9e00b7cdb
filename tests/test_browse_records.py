"""Browse records survive JSON both ways, and bad JSON is refused naming the field."""

from __future__ import annotations

import json
from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st

from civitai_tui.browse.records import (
    BrowsePage,
    BrowseQuery,
    FileInfo,
    ImageRef,
    LibraryEntry,
    ModelDetail,
    ModelSummary,
    VersionInfo,
)

texts = st.text(max_size=40)
ints = st.integers(min_value=0, max_value=2**53)
floats = st.floats(allow_nan=False, allow_infinity=False)
dates = st.datetimes(timezones=st.sampled_from([UTC, None])) | st.none()
images = st.builds(ImageRef, url=texts, width=ints, height=ints, nsfw_level=ints)
summaries = st.builds(
    ModelSummary,
    id=ints,
    name=texts,
    creator=texts,
    type=texts,
    base_model=texts,
    downloads=ints,
    rating=floats | st.none(),
    newest_version_date=dates,
    preview=images | st.none(),
)
files = st.builds(
    FileInfo,
    id=ints,
    name=texts,
    size_bytes=ints,
    format=texts,
    fp=texts | st.none(),
    pickle_scan=texts,
    virus_scan=texts,
    primary=st.booleans(),
)
versions = st.builds(
    VersionInfo,
    id=ints,
    name=texts,
    base_model=texts,
    published_at=dates,
    files=st.lists(files, max_size=3).map(tuple),
    trained_words=st.lists(texts, max_size=3).map(tuple),
    images=st.lists(images, max_size=3).map(tuple),
)
records = st.one_of(
    st.builds(
        BrowseQuery,
        query=texts,
        types=st.lists(texts, max_size=3).map(tuple),
        base_models=st.lists(texts, max_size=3).map(tuple),
        sort=texts,
        period=texts,
        nsfw=st.booleans(),
        cursor=texts | st.none(),
        limit=ints,
    ),
    st.builds(
        BrowsePage,
        items=st.lists(summaries, max_size=3).map(tuple),
        next_cursor=texts | st.none(),
        age_s=floats,
    ),
    st.builds(
        ModelDetail,
        summary=summaries,
        description_text=texts,
        allow_commercial_use=st.lists(texts, max_size=3).map(tuple),
        allow_no_credit=st.booleans(),
        versions=st.lists(versions, max_size=3).map(tuple),
        page_url=texts,
        age_s=floats,
    ),
    st.builds(
        LibraryEntry,
        path=texts,
        sha256=texts,
        known=st.booleans(),
        model_id=ints | st.none(),
        model_name=texts | st.none(),
        version_id=ints | st.none(),
        version_name=texts | st.none(),
        newest_version_id=ints | st.none(),
        newest_version_name=texts | st.none(),
        has_update=st.booleans(),
    ),
)


@given(records)
def test_every_record_round_trips_through_json(record) -> None:
    wire = json.loads(json.dumps(record.to_dict()))
    assert type(record).from_dict(wire) == record


def test_query_defaults_fill_missing_keys_and_unknown_keys_are_ignored() -> None:
    assert BrowseQuery.from_dict({"query": "lora", "future": 1}) == BrowseQuery(query="lora")


def test_a_float_field_takes_a_json_integer() -> None:
    page = BrowsePage.from_dict({"items": [], "next_cursor": None, "age_s": 3})
    assert page.age_s == 3.0 and isinstance(page.age_s, float)


@pytest.mark.parametrize(
    ("record", "data", "named"),
    [
        (BrowseQuery, {"nsfw": "yes"}, "BrowseQuery.nsfw must be bool"),
        (BrowseQuery, {"limit": True}, "BrowseQuery.limit must be int"),
        (BrowseQuery, {"types": "LORA"}, "BrowseQuery.types must be a list"),
        (BrowseQuery, {"types": ["LORA", 3]}, "BrowseQuery.types[1] must be str"),
        (ImageRef, {"url": "u", "width": 1, "height": 2}, "ImageRef.nsfw_level is missing"),
        (BrowsePage, [], "BrowsePage must be a JSON object"),
        (
            VersionInfo,
            {
                "id": 1,
                "name": "v",
                "base_model": "SD 1.5",
                "published_at": "yesterday",
                "files": [],
                "trained_words": [],
                "images": [],
            },
            "VersionInfo.published_at must be an ISO 8601 date",
        ),
        (
            BrowsePage,
            {"items": [{"id": 1}], "next_cursor": None, "age_s": 0},
            "BrowsePage.items[0]: ModelSummary.name is missing",
        ),
    ],
)
def test_bad_json_is_refused_naming_the_field(record, data, named) -> None:
    with pytest.raises(TypeError, match=named.replace("[", r"\[").replace("]", r"\]")):
        record.from_dict(data)


def test_a_refusal_quotes_a_huge_value_only_briefly() -> None:
    with pytest.raises(TypeError) as caught:
        BrowseQuery.from_dict({"query": ["x" * 10_000]})
    assert len(str(caught.value)) < 120
