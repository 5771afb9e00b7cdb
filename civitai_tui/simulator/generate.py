"""Builds the deterministic simulated catalogue from a seed.

27 ordinary models (random types, base models, creators, tags, stats, dates,
1-4 versions of 1-3 files) plus one model per special case named in
:class:`~civitai_tui.simulator.catalogue.Specials`. Ids, names and bytes depend
only on the seed; dates are relative to the current hour (UTC) so ``period``
filters keep meaning something.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from civitai_tui.simulator.catalogue import (
    Catalogue,
    FileRef,
    HashPolicy,
    ModelStats,
    SimFile,
    SimImage,
    SimModel,
    SimVersion,
    Specials,
)
from civitai_tui.simulator.content import ContentKind, ContentSpec, FileContent, tiny_png

MODEL_TYPES = ("Checkpoint", "LORA", "LoCon", "TextualInversion", "VAE", "Controlnet", "Upscaler")
BASE_MODELS = ("SD 1.5", "SDXL 1.0", "Flux.1 D", "Pony", "Illustrious")
CREATORS = (
    "PixelForge",
    "lykon_fan",
    "NeonDreamer",
    "kohya_trainer",
    "AnimeArchivist",
    "RealismLab",
    "sakura_works",
    "VectorVoid",
)
TAGS = (
    "anime",
    "realistic",
    "style",
    "character",
    "landscape",
    "concept",
    "base model",
    "photography",
    "pixel art",
    "fantasy",
    "portrait",
    "architecture",
)
ADJECTIVES = ("Dream", "Neon", "Silent", "Golden", "Crystal", "Velvet", "Pixel", "Lunar", "Misty")
NOUNS = ("Shaper", "Vision", "Garden", "Echo", "Canvas", "Horizon", "Bloom", "Forge", "Drift")
#: Every fourth ordinary model is NSFW (6 of 27): hidden unless ``nsfw=true``.
NSFW_EVERY = 4
#: The multi-file version's primary and pruned sizes (fixed: fault tests rely on them).
MULTI_SIZES = ((3 << 20) + 12345, (1 << 20) + 4321)
REGULAR_MODELS = 27
MIN_SIZE = 16 << 10
MAX_SIZE = 4 << 20
#: Offsets (days before the current hour) that give every ``period`` filter something to show.
AGE_DAYS = (0, 3, 12, 45, 200, 500, 900)
CLEAN_PICKLE_MESSAGE = "**Detected Pickle imports (1)**\n* collections.OrderedDict"
DANGER_PICKLE_MESSAGE = (
    "*Dangerous import detected*\n**Detected Pickle imports (1)**\n* posix.system"
)


def camel(text: str) -> str:
    """``"Dream Shaper"`` → ``"dreamShaper"`` (CivitAI's download file names)."""
    words = re.findall(r"[A-Za-z0-9]+", text) or ["model"]
    return words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:])


@dataclass
class Builder:
    seed: int
    rng: random.Random
    today: datetime
    models_made: int = 0
    fixed_size: int | None = None  # every regular file this size (benchmarks)
    next_id: dict[str, int] = field(
        default_factory=lambda: {
            "model": 4_000,
            "version": 90_000,
            "file": 70_000,
            "image": 5_000_000,
        }
    )

    def new_id(self, kind: str) -> int:
        self.next_id[kind] += self.rng.randint(1, 97)
        return self.next_id[kind]

    def content(
        self, file_id: int, size: int, kind: ContentKind, malicious: bool = False
    ) -> FileContent:
        return FileContent(ContentSpec(self.seed * 1_000_003 + file_id, size, kind, malicious))

    def random_size(self) -> int:
        if self.fixed_size is not None:
            return self.fixed_size
        return int(math.exp(self.rng.uniform(math.log(MIN_SIZE), math.log(MAX_SIZE))))

    def images(self, count: int, nsfw: bool) -> list[SimImage]:
        images = []
        for _ in range(count):
            image_id = self.new_id("image")
            level = self.rng.choice((4, 8, 16)) if nsfw and self.rng.random() < 0.7 else 1
            width, height = self.rng.choice(((16, 24), (24, 16), (16, 16)))
            blurhash = "".join(
                self.rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijk")
                for _ in range(28)
            )
            png = tiny_png(width, height, image_id)
            images.append(SimImage(image_id, level, width, height, "U" + blurhash, png))
        return images

    def file(
        self,
        version_id: int,
        name: str,
        *,
        primary: bool = True,
        file_type: str = "Model",
        kind: ContentKind = ContentKind.SAFETENSORS,
        size: int | None = None,
        fp: str | None = "fp16",
        size_label: str | None = "pruned",
        scanned_at: datetime | None = None,
        malicious: bool = False,
    ) -> SimFile:
        file_id = self.new_id("file")
        content = self.content(file_id, size or self.random_size(), kind, malicious)
        fmt = {ContentKind.SAFETENSORS: "SafeTensor", ContentKind.PICKLE_ZIP: "PickleTensor"}
        message = (
            "No Pickle imports" if kind is not ContentKind.PICKLE_ZIP else CLEAN_PICKLE_MESSAGE
        )
        return SimFile(
            id=file_id,
            version_id=version_id,
            name=name,
            type=file_type,
            primary=primary,
            format=fmt.get(kind, "Other"),
            size_label=size_label if kind is not ContentKind.TEXT else None,
            fp=fp if kind is not ContentKind.TEXT else None,
            content=content,
            pickle_message=message,
            scanned_at=scanned_at,
        )

    def version(
        self, model_id: int, name: str, base_model: str, published: datetime, nsfw: bool = False
    ) -> SimVersion:
        return SimVersion(
            id=self.new_id("version"),
            model_id=model_id,
            name=name,
            base_model=base_model,
            created_at=published - timedelta(hours=2),
            published_at=published,
            trained_words=self.rng.sample(("masterpiece", "sks style", "ohwx", "detailed"), 2),
            files=[],
            images=self.images(self.rng.randint(1, 3), nsfw),
            download_count=self.rng.randint(10, 200_000),
            thumbs_up=self.rng.randint(0, 20_000),
            description=f"<p>{name} release notes.</p>",
        )

    def stats(self) -> ModelStats:
        rng = self.rng
        return ModelStats(
            download_count=rng.randint(50, 2_000_000),
            thumbs_up=rng.randint(0, 90_000),
            thumbs_down=rng.randint(0, 500),
            comments=rng.randint(0, 3_000),
            tipped=rng.randint(0, 200_000),
            collected=rng.randint(0, 50_000),
        )

    def model(self, name: str, model_type: str, *, nsfw: bool = False) -> SimModel:
        model_id = self.new_id("model")
        self.models_made += 1
        return SimModel(
            id=model_id,
            name=name,
            type=model_type,
            creator=CREATORS[self.models_made % len(CREATORS)],
            tags=sorted(self.rng.sample(TAGS, self.rng.randint(1, 4))),
            description=f"<p>{name}: a simulated {model_type}.</p>",
            versions=[],
            stats=self.stats(),
            nsfw=nsfw,
        )

    def published(self, age_days: int) -> datetime:
        return self.today - timedelta(days=age_days, minutes=self.rng.randint(0, 600))


def file_name(model: SimModel, version: SimVersion, suffix: str, ext: str) -> str:
    """``{modelName}_{versionName}{suffix}.{ext}``, as CivitAI names downloads."""
    return f"{camel(model.name)}_{camel(version.name)}{suffix}.{ext}"


def _regular_model(b: Builder, index: int) -> SimModel:
    rng = b.rng
    model_type = MODEL_TYPES[index % len(MODEL_TYPES)]
    nsfw = index % NSFW_EVERY == NSFW_EVERY - 1
    name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {model_type if index % 3 else 'XL'}"
    age = AGE_DAYS[index % len(AGE_DAYS)]
    model = b.model(name, model_type, nsfw=nsfw)
    base = rng.choice(BASE_MODELS)
    count = rng.randint(1, 4)
    for number in range(count, 0, -1):  # newest first, as the API lists them
        published = b.published(age + 30 * (count - number))
        version = b.version(model.id, f"v{number}.0", base, published, nsfw)
        version.files = _regular_files(b, model, version)
        model.versions.append(version)
    return model


def _regular_files(b: Builder, model: SimModel, version: SimVersion) -> list[SimFile]:
    scanned = version.published_at - timedelta(minutes=30)
    pickled = model.type in ("Upscaler", "TextualInversion") and b.rng.random() < 0.5
    kind = ContentKind.PICKLE_ZIP if pickled else ContentKind.SAFETENSORS
    ext = (
        {"Upscaler": "pth", "TextualInversion": "pt"}.get(model.type, "ckpt")
        if pickled
        else "safetensors"
    )
    files = [b.file(version.id, file_name(model, version, "", ext), kind=kind, scanned_at=scanned)]
    if model.type == "Checkpoint" and b.rng.random() < 0.6:
        name = file_name(model, version, "_fp32", "safetensors")
        files.append(
            b.file(
                version.id, name, primary=False, fp="fp32", size_label="full", scanned_at=scanned
            )
        )
    if model.type == "Checkpoint" and b.rng.random() < 0.3:
        name = file_name(model, version, "", "yaml")
        files.append(
            b.file(
                version.id,
                name,
                primary=False,
                file_type="Config",
                kind=ContentKind.TEXT,
                scanned_at=scanned,
            )
        )
    return files


def _special(
    b: Builder, name: str, model_type: str, file_name: str, **file_args: object
) -> tuple[SimModel, FileRef]:
    """A one-version, one-file model for a special case."""
    model = b.model(name, model_type)
    version = b.version(model.id, "v1.0", b.rng.choice(BASE_MODELS), b.published(60))
    scanned = version.published_at - timedelta(minutes=30)
    file_args.setdefault("scanned_at", scanned)
    version.files = [b.file(version.id, file_name, **file_args)]  # type: ignore[arg-type]
    model.versions.append(version)
    return model, FileRef(model.id, version.id, version.files[0].id)


def _specials(b: Builder) -> tuple[list[SimModel], Specials]:
    models: list[SimModel] = []

    def add(name: str, model_type: str, file_name: str, **file_args: object) -> FileRef:
        model, ref = _special(b, name, model_type, file_name, **file_args)
        models.append(model)
        return ref

    ckpt = {"kind": ContentKind.PICKLE_ZIP, "size": 48 << 10}
    malicious = add(
        "Retro Toon Merge", "Checkpoint", "retroToonMerge_v10.ckpt", malicious=True, **ckpt
    )
    danger = add("Shady Blend", "Checkpoint", "shadyBlend_v10.ckpt", malicious=True, **ckpt)
    models[-1].versions[0].files[0].pickle_scan = "Danger"
    models[-1].versions[0].files[0].pickle_message = DANGER_PICKLE_MESSAGE
    clean = add("Classic Photo Mix", "Checkpoint", "classicPhotoMix_v10.ckpt", **ckpt)
    early = add("Preview Lighting LoRA", "LORA", "previewLighting_v1.safetensors")
    models[-1].versions[0].early_access_ends_at = b.today + timedelta(days=7)
    archived = add("Old Ink Style", "LORA", "oldInkStyle_v1.safetensors")
    models[-1].mode = "Archived"
    hostile, hostile_files = _hostile(b, models)
    large = add("Large Realism", "Checkpoint", "largeRealism_v10.safetensors", size=128 << 20)
    huge = add("Huge Foundation", "Checkpoint", "hugeFoundation_v10.safetensors", size=512 << 20)
    multi, multi_files = _multi_file(b, models)
    no_hashes = add("Fresh Upload LoRA", "LORA", "freshUpload.safetensors", scanned_at=None)
    file = models[-1].versions[0].files[0]
    file.hash_policy, file.pickle_scan, file.virus_scan = HashPolicy.NONE, "Pending", "Pending"
    file.pickle_message = None
    blake3_only = add("Blake Only LoRA", "LORA", "blakeOnly_v1.safetensors")
    models[-1].versions[0].files[0].hash_policy = HashPolicy.BLAKE3_ONLY
    wrong = add("Stale Hash LoRA", "LORA", "staleHash_v1.safetensors")
    models[-1].versions[0].files[0].hash_policy = HashPolicy.WRONG
    unicode_ref = add("Sakura Style", "LORA", "sakura_桜_スタイル_ü_v1.safetensors")
    return models, Specials(
        malicious_ckpt=malicious,
        danger_flagged=danger,
        clean_ckpt=clean,
        early_access=early,
        archived=archived,
        hostile_names=hostile,
        hostile_files=hostile_files,
        large=large,
        huge=huge,
        multi_file=multi,
        multi_files=multi_files,
        no_hashes=no_hashes,
        blake3_only=blake3_only,
        wrong_hash=wrong,
        unicode_name=unicode_ref,
    )


HOSTILE_FILE_NAMES = (
    "../../../../tmp/escape.safetensors",
    "CON.safetensors",
    "ctrl\x1b[2J\x07name\t.safetensors",
    "x" * 300 + ".safetensors",
)


def _hostile(b: Builder, models: list[SimModel]) -> tuple[FileRef, tuple[int, ...]]:
    model = b.model("../../CON \x1b[31m<b>Evil</b>\x07 Model", "Checkpoint")
    version = b.version(model.id, "v1/../..", "SD 1.5", b.published(90))
    for index, name in enumerate(HOSTILE_FILE_NAMES):
        file_type = "Model" if index == 0 else "Other"
        version.files.append(b.file(version.id, name, primary=index == 0, file_type=file_type))
    model.versions.append(version)
    models.append(model)
    ids = tuple(f.id for f in version.files)
    return FileRef(model.id, version.id, ids[0]), ids


def _multi_file(b: Builder, models: list[SimModel]) -> tuple[FileRef, tuple[int, int, int]]:
    model = b.model("Trio Checkpoint", "Checkpoint")
    version = b.version(model.id, "v2.0", "SDXL 1.0", b.published(20))
    version.files = [
        b.file(
            version.id,
            "trioCheckpoint_v20.safetensors",
            fp="fp32",
            size_label="full",
            size=MULTI_SIZES[0],
        ),
        b.file(
            version.id,
            "trioCheckpoint_v20Pruned.safetensors",
            primary=False,
            file_type="Pruned Model",
            size=MULTI_SIZES[1],
        ),
        b.file(
            version.id,
            "trioCheckpoint_v20.yaml",
            primary=False,
            file_type="Config",
            kind=ContentKind.TEXT,
        ),
    ]
    model.versions.append(version)
    models.append(model)
    primary, pruned, config = (f.id for f in version.files)
    return FileRef(model.id, version.id, primary), (primary, pruned, config)


def build_catalogue(
    seed: int = 1,
    today: datetime | None = None,
    *,
    regular_models: int = REGULAR_MODELS,
    file_size: int | None = None,
    gallery: int = 0,
) -> Catalogue:
    """The catalogue for ``seed`` (``today`` anchors the dates; default: now, UTC).

    Benchmarks ask for more ``regular_models`` and a fixed ``file_size`` for their
    files (the specials keep theirs). ``gallery`` adds that many browsable models
    after the others (:mod:`civitai_tui.simulator.gallery`; their ids do not move).
    """
    from civitai_tui.simulator.gallery import gallery_models  # it builds on this module

    now = today or datetime.now(UTC)
    # The hour, not the day: "today" models, up to 10 h old, must stay within
    # ``period=Day`` at 23:59 too (a midnight anchor put them up to 34 h back).
    anchor = now.replace(minute=0, second=0, microsecond=0)
    builder = Builder(seed, random.Random(seed), anchor)
    builder.fixed_size = file_size
    models = [_regular_model(builder, i) for i in range(regular_models)]
    builder.fixed_size = None
    special_models, specials = _specials(builder)
    extra = gallery_models(seed, anchor, gallery) if gallery else []
    return Catalogue(seed=seed, models=models + special_models + extra, specials=specials)
