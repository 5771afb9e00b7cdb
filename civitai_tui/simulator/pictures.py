"""Preview pictures of the simulated gallery: real PNG, JPEG and WebP, drawn on request.

Each picture depends only on its image id and size: a two-colour gradient with a
few shapes and the id written on it (Pillow), at any width the client asks for
(like CivitAI's ``/width=N/`` image CDN), encoded in the image's own format.
Drawn pictures are kept in a small LRU, so scrolling back costs nothing.
"""

from __future__ import annotations

import functools
import io
import random

from PIL import Image, ImageDraw, ImageOps

#: CivitAI's formats and their file extensions and Pillow encoders.
FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@functools.lru_cache(maxsize=256)
def draw(image_id: int, width: int, height: int, fmt: str) -> bytes:
    """The picture of ``image_id`` at ``width`` x ``height`` pixels, encoded as ``fmt``."""
    rng = random.Random(image_id)

    def colour() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    gradient = Image.linear_gradient("L").rotate(rng.choice((0, 45, 90, 135)))
    picture = ImageOps.colorize(gradient.resize((width, height)), colour(), colour())
    pen = ImageDraw.Draw(picture)
    for _ in range(rng.randint(2, 5)):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.08, 0.3) * min(width, height)
        shape = pen.ellipse if rng.random() < 0.6 else pen.rectangle
        shape((x - r, y - r, x + r, y + r), fill=colour(), outline=colour())
    pen.text((4, 4), f"#{image_id}", fill=(255, 255, 255))
    out = io.BytesIO()
    picture.save(out, FORMATS[fmt], quality=80)
    return out.getvalue()
