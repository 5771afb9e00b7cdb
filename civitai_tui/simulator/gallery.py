"""A catalogue worth browsing: hundreds of models of every type and base model.

Added after the regular and special models (``build_catalogue(gallery=N)``), from
their own random stream and id ranges, so the ids and bytes the test suite relies
on do not move. Each gallery model has 1-5 versions spread over the last three
years (newest first), files of several formats (SafeTensor, PickleTensor, GGUF,
Other) and sizes (16-96 KiB: browsing, not downloading, is the point), trigger
words, licence flags, an HTML description (some hostile: markup, escapes, a huge
one), and 1-4 pictures per version in PNG, JPEG or WebP of a few sizes with
NSFW levels (:mod:`civitai_tui.simulator.pictures` draws them on request).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from civitai_tui.simulator.catalogue import SimFile, SimImage, SimModel, SimVersion
from civitai_tui.simulator.content import ContentKind
from civitai_tui.simulator.generate import ADJECTIVES, NOUNS, TAGS, Builder, file_name
from civitai_tui.simulator.listing import BASE_MODELS, MODEL_TYPES

#: What ``civitai-tui simulator`` and ``demo`` serve.
GALLERY_MODELS = 400
SIZES = ((512, 768), (768, 512), (832, 1216), (1024, 1024), (640, 640))
PICTURE_FORMATS = ("jpeg", "webp", "png")
CREATORS = (
    "MeshMonk", "ink_and_iris", "LatentLarks", "photon_forge", "NoiseGarden", "CelShadeCo",
    "TurboTinker", "mossy_pixels", "Aperture9", "UmbraWorks", "kawaii_kernel", "dune_diffuser",
)  # fmt: skip
WORDS = ("masterpiece", "sks", "ohwx person", "film grain", "cel shading", "bokeh", "1girl")
#: ``allowCommercialUse`` as the API sends it: a Postgres array literal, or a JSON list.
LICENCES = ("{Image,RentCivit}", "{Image}", "None", "{Sell,Image,Rent,RentCivit}", ["Image"])
SUFFIX = {"SafeTensor": "safetensors", "PickleTensor": "ckpt", "GGUF": "gguf", "Other": "zip"}
HOSTILE_DESCRIPTIONS = (
    '<p>Looks <b>great</b>\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07 <script>alert("x")</script></p>',
    "<p>[bold red]not markup[/] &lt;i&gt; \u202egnp.exe\u202c &#27;[31m</p>",
    "<div>" * 5_000 + "deep" + "</div>" * 5_000,
    "<p>" + "A very long description. " * 40_000 + "</p>",
)
FIRST_IDS = {"model": 300_000, "version": 3_000_000, "file": 2_000_000, "image": 60_000_000}


def _description(rng: random.Random, index: int, name: str) -> str:
    if index % 37 == 5:
        return HOSTILE_DESCRIPTIONS[(index // 37) % len(HOSTILE_DESCRIPTIONS)]
    words = ", ".join(rng.sample(TAGS, 3))
    return (
        f"<h2>{name}</h2><p>A simulated model for <i>{words}</i>.</p>"
        "<ul><li>Use CFG 5-7</li><li>Clip skip 2</li></ul>"
        f'<p>More on <a href="https://civitai.com/models/{index}">the model page</a>.</p>'
    )


def _pictures(b: Builder, count: int, nsfw: bool) -> list[SimImage]:
    rng, images = b.rng, []
    for _ in range(count):
        level = rng.choice((2, 4, 8, 16)) if nsfw and rng.random() < 0.6 else 1
        width, height = rng.choice(SIZES)
        blurhash = "U" + "".join(rng.choice("0123456789ABCDEFGHIJKabcdefghijk") for _ in range(28))
        image = SimImage(b.new_id("image"), level, width, height, blurhash)
        image.drawn = rng.choice(PICTURE_FORMATS)
        images.append(image)
    return images


def _files(b: Builder, model: SimModel, version: SimVersion) -> list[SimFile]:
    rng = b.rng
    formats = ["SafeTensor"]
    if model.type in ("Checkpoint", "Upscaler", "TextualInversion") and rng.random() < 0.3:
        formats.append("PickleTensor")
    if model.type in ("Checkpoint", "UNet", "LORA") and rng.random() < 0.25:
        formats.append("GGUF")
    if model.type in ("Workflows", "Wildcards", "Poses", "Other"):
        formats = ["Other"]
    files = []
    for index, fmt in enumerate(formats):
        kind = {"PickleTensor": ContentKind.PICKLE_ZIP, "Other": ContentKind.TEXT}.get(
            fmt, ContentKind.SAFETENSORS
        )
        suffix = "" if index == 0 else f"_{fmt.lower()}"
        name = file_name(model, version, suffix, SUFFIX[fmt])
        file = b.file(
            version.id,
            name,
            primary=index == 0,
            kind=kind,
            size=rng.randint(16, 96) << 10,
            fp=rng.choice(("fp16", "bf16", "fp32", "fp8")),
            size_label=rng.choice(("pruned", "full")),
            scanned_at=version.published_at - timedelta(minutes=20),
        )
        file.format = fmt
        file.pickle_scan = rng.choices(("Success", "Pending", "Error"), (90, 7, 3))[0]
        file.virus_scan = rng.choices(("Success", "Pending"), (95, 5))[0]
        files.append(file)
    return files


def _model(b: Builder, index: int) -> SimModel:
    rng = b.rng
    model_type = MODEL_TYPES[index % len(MODEL_TYPES)]
    nsfw = rng.random() < 0.2
    name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {model_type} {index}"
    model = b.model(name, model_type, nsfw=nsfw)
    model.creator = CREATORS[index % len(CREATORS)]
    model.description = _description(rng, index, name)
    model.licence = rng.choice(LICENCES)
    model.allow_no_credit = rng.random() < 0.5
    base = BASE_MODELS[(index // len(MODEL_TYPES)) % len(BASE_MODELS)]
    newest_age = rng.choice((0, 1, 3, 6, 10, 20, 40, 90, 200, 400, 800))
    count = rng.randint(1, 5)
    for number in range(count, 0, -1):  # newest first, as the API lists them
        published = b.published(newest_age + 45 * (count - number))
        version = b.version(model.id, f"v{number}.0", base, published, nsfw)
        version.images = _pictures(b, rng.randint(1, 4), nsfw)
        version.trained_words = rng.sample(WORDS, rng.randint(0, 3))
        version.files = _files(b, model, version)
        model.versions.append(version)
    return model


def gallery_models(seed: int, today: datetime, count: int) -> list[SimModel]:
    """``count`` browsable models for ``seed`` (``today``: the catalogue's anchor hour)."""
    b = Builder(seed, random.Random(f"gallery-{seed}"), today)
    b.next_id = dict(FIRST_IDS)
    return [_model(b, index) for index in range(count)]
