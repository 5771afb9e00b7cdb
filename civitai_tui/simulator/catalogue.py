"""The simulated CivitAI catalogue: models, versions, files and images, by id.

Data only; :mod:`civitai_tui.simulator.generate` builds it from a seed and
:mod:`civitai_tui.simulator.render` turns it into API JSON. ``Catalogue.specials``
names the ids of the files tests need (malicious checkpoint, early access,
archived, huge, ...).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from civitai_tui.simulator.content import FileContent


class HashPolicy(StrEnum):
    """What the API claims about a file's hashes."""

    REAL = "real"  # all the true hashes
    NONE = "none"  # ``{}`` (a brand-new upload)
    BLAKE3_ONLY = "blake3_only"
    WRONG = "wrong"  # hashes of other bytes, as happens on CivitAI


@dataclass
class SimFile:
    """One downloadable file of a version."""

    id: int
    version_id: int
    name: str
    type: str  # "Model", "Pruned Model", "VAE", "Config", ...
    primary: bool
    format: str  # "SafeTensor", "PickleTensor", "Other"
    size_label: str | None  # "full" | "pruned" | None
    fp: str | None
    content: FileContent = field(repr=False)
    pickle_scan: str = "Success"
    pickle_message: str | None = "No Pickle imports"
    virus_scan: str = "Success"
    scanned_at: datetime | None = None
    hash_policy: HashPolicy = HashPolicy.REAL

    @property
    def size(self) -> int:
        return self.content.size

    @property
    def size_kb(self) -> float:
        return self.size / 1024

    def read(self, start: int, end: int) -> bytes:
        """The served bytes ``[start, end)``."""
        return self.content.read(start, end)

    @property
    def sha256(self) -> str:
        """The TRUE SHA256 of the served bytes (uppercase; for ``wrong_hash`` the
        API reports another one: see :meth:`api_hashes`)."""
        return self.content.hashes().sha256

    @property
    def blake3(self) -> str:
        return self.content.hashes().blake3

    def hashes_ready(self) -> bool:
        return self.hash_policy is not HashPolicy.REAL or self.content.hashes_ready()

    def api_hashes(self) -> dict[str, str]:
        """The ``hashes`` object the API reports (may be empty, partial or wrong)."""
        if self.hash_policy is HashPolicy.NONE:
            return {}
        if self.hash_policy is HashPolicy.WRONG:
            return _wrong_hashes(self.id)
        real = self.content.hashes().as_api()
        if self.hash_policy is HashPolicy.BLAKE3_ONLY:
            return {"BLAKE3": real["BLAKE3"]}
        return real


def _wrong_hashes(file_id: int) -> dict[str, str]:
    sha = hashlib.sha256(f"stale upload {file_id}".encode()).hexdigest().upper()
    blake = hashlib.blake2s(f"stale upload {file_id}".encode()).hexdigest().upper()
    return {"AutoV2": sha[:10], "SHA256": sha, "CRC32": sha[-8:], "BLAKE3": blake}


@dataclass
class SimImage:
    """A preview image: a tiny PNG, or (gallery) a picture drawn on request in ``drawn``'s
    format ("png", "jpeg", "webp") at any width (:mod:`civitai_tui.simulator.pictures`)."""

    id: int
    nsfw_level: int
    width: int
    height: int
    blurhash: str
    png: bytes = field(default=b"", repr=False)
    drawn: str = ""


@dataclass
class SimVersion:
    id: int
    model_id: int
    name: str
    base_model: str
    created_at: datetime
    published_at: datetime
    trained_words: list[str]
    files: list[SimFile]
    images: list[SimImage]
    download_count: int
    thumbs_up: int
    early_access_ends_at: datetime | None = None
    description: str = ""

    @property
    def nsfw_level(self) -> int:
        level = 0
        for image in self.images:
            level |= image.nsfw_level
        return level or 1

    def primary_file(self) -> SimFile | None:
        return next((f for f in self.files if f.primary), None)


@dataclass
class ModelStats:
    download_count: int
    thumbs_up: int
    thumbs_down: int
    comments: int
    tipped: int
    collected: int


@dataclass
class SimModel:
    id: int
    name: str
    type: str  # ModelType: "Checkpoint", "LORA", ...
    creator: str
    tags: list[str]
    description: str
    versions: list[SimVersion]  # newest first, all published
    stats: ModelStats
    nsfw: bool = False
    mode: str | None = None  # None | "Archived" | "TakenDown"
    licence: str | list[str] = "{Image,RentCivit}"  # allowCommercialUse, as the API sends it
    allow_no_credit: bool = True

    @property
    def nsfw_level(self) -> int:
        level = 0
        for version in self.versions:
            level |= version.nsfw_level
        return level

    @property
    def published_at(self) -> datetime:
        return min(v.published_at for v in self.versions)

    @property
    def last_published_at(self) -> datetime:
        return max(v.published_at for v in self.versions)

    @property
    def image_count(self) -> int:
        return sum(len(v.images) for v in self.versions)


@dataclass(frozen=True)
class FileRef:
    """Where a special file lives: the ids a test needs to reach it."""

    model_id: int
    version_id: int
    file_id: int


@dataclass(frozen=True)
class Specials:
    """Files with a known quirk, for tests (each is its own model unless noted)."""

    #: ``.ckpt`` whose data.pkl calls posix.system, while the API says "Success".
    malicious_ckpt: FileRef
    #: ``.ckpt`` that CivitAI's own scan flagged: pickleScanResult "Danger".
    danger_flagged: FileRef
    #: ``.ckpt`` with an innocuous pickle (collections.OrderedDict).
    clean_ckpt: FileRef
    #: A version in early access until a future deadline: download → 403 JSON.
    early_access: FileRef
    #: A model with mode "Archived": listings show ``files: []``, download → 410.
    archived: FileRef
    #: Model/file names with "../", "CON", control characters and a 300-char name;
    #: ``hostile_files`` lists every file of that version.
    hostile_names: FileRef
    hostile_files: tuple[int, ...]
    #: A 128 MiB safetensors checkpoint.
    large: FileRef
    #: A 512 MiB safetensors checkpoint.
    huge: FileRef
    #: A version with a primary safetensors (full fp32), a pruned fp16 and a config;
    #: ``multi_files`` is (primary, pruned fp16, config yaml).
    multi_file: FileRef
    multi_files: tuple[int, int, int]
    #: ``hashes: {}`` and scans "Pending".
    no_hashes: FileRef
    #: Only a BLAKE3 hash.
    blake3_only: FileRef
    #: The API's SHA256 (and other hashes) do not match the bytes.
    wrong_hash: FileRef
    #: A UTF-8 (non-ASCII) file name.
    unicode_name: FileRef


@dataclass
class Catalogue:
    """All models, with lookups by model, version, file and image id."""

    seed: int
    models: list[SimModel]
    specials: Specials
    _models: dict[int, SimModel] = field(init=False, repr=False)
    _versions: dict[int, SimVersion] = field(init=False, repr=False)
    _files: dict[int, SimFile] = field(init=False, repr=False)
    _images: dict[int, SimImage] = field(init=False, repr=False)
    _by_hash: dict[str, list[SimVersion]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._models = {m.id: m for m in self.models}
        self._versions = {v.id: v for m in self.models for v in m.versions}
        self._files = {f.id: f for v in self._versions.values() for f in v.files}
        self._images = {i.id: i for v in self._versions.values() for i in v.images}

    def model(self, model_id: int) -> SimModel | None:
        return self._models.get(model_id)

    def ordinary_models(self) -> list[SimModel]:
        """The models without a quirk (no special, no ``mode``), in catalogue order."""
        specials = self.specials
        quirky = {
            getattr(specials, name).model_id
            for name in specials.__dataclass_fields__
            if hasattr(getattr(specials, name), "model_id")
        }
        return [m for m in self.models if m.id not in quirky and not m.mode]

    def version(self, version_id: int) -> SimVersion | None:
        return self._versions.get(version_id)

    def file(self, file_id: int) -> SimFile | None:
        return self._files.get(file_id)

    def image(self, image_id: int) -> SimImage | None:
        return self._images.get(image_id)

    def files(self) -> Iterator[SimFile]:
        return iter(self._files.values())

    def model_of_version(self, version: SimVersion) -> SimModel:
        return self._models[version.model_id]

    def version_of_file(self, file: SimFile) -> SimVersion:
        return self._versions[file.version_id]

    def find_by_hash(self, value: str) -> SimVersion | None:
        """The oldest published version with a file whose API hash (any kind) matches."""
        if self._by_hash is None:  # built once: every hash is fixed when the catalogue is
            self._by_hash = {}
            for f in self._files.values():
                for digest in f.api_hashes().values():
                    self._by_hash.setdefault(digest, []).append(self._versions[f.version_id])
        matches = self._by_hash.get(value.strip().upper(), [])
        return min(matches, key=lambda v: (v.published_at, v.id), default=None)
