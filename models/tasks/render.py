"""Rendered text with ground truth: text-line crops and pages, drawn with Pillow and the DejaVu fonts that
matplotlib ships.

Determinism: every random choice comes from the caller's ``np.random.RandomState`` and uses only
``randint``/``random_sample`` (integer arithmetic, the same stream everywhere; ``standard_normal`` goes
through libm ``log``). Pillow draws glyphs with the FreeType it bundles, so the bytes are fixed for a given
Pillow version, and so does Pillow's blur. Images are RGB ``uint8`` arrays [H, W, 3].
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from bench.errors import UserError
from bench.models.tasks import INSTALL_HINT

# Upright faces of three families; italics are in too, as real documents have them.
FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
)

# Common English words (no proper nouns): the Latin vocabulary of the labelled sets.
WORDS = tuple(
    """
    time year people way day man thing woman life child world school state family student group country
    problem hand part place case week company system program question work government number night point
    home water room mother area money story fact month lot right study book eye job word business issue side
    kind head house service friend father power hour game line end member law car city community name
    president team minute idea kid body information back parent face others level office door health person
    art war history party result change morning reason research girl guy moment air teacher force education
    open model market price report value window light table paper music river garden street summer winter
    letter number station energy travel coffee orange yellow purple silver simple quick bright green
    """.split()
)


@lru_cache(maxsize=1)
def font_dir() -> Path:
    """matplotlib's bundled TrueType folder; ``get_data_path`` needs no pyplot, so no GUI backend loads."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise UserError(INSTALL_HINT) from None

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@lru_cache(maxsize=256)
def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_dir() / name), size)


def _choice(rng: np.random.RandomState, items: tuple | str):
    return items[rng.randint(len(items))]


def _digits(rng: np.random.RandomState, lo: int, hi: int) -> str:
    return "".join(_choice(rng, string.digits) for _ in range(rng.randint(lo, hi + 1)))


def _word(rng: np.random.RandomState) -> str:
    """A word lower-case, Capitalized or UPPER, as it comes in running text, titles and signs."""
    word = _choice(rng, WORDS)
    style = rng.randint(4)
    return word.capitalize() if style == 1 else word.upper() if style == 2 else word


def _mixed(rng: np.random.RandomState) -> str:
    """Mixed case and letters with digits: camelCase identifiers, codes, prices, dates, times, versions."""
    kind = rng.randint(6)
    if kind == 0:
        return _choice(rng, WORDS) + _choice(rng, WORDS).capitalize()
    if kind == 1:
        return _word(rng).capitalize() + _digits(rng, 1, 3)
    if kind == 2:
        return f"${_digits(rng, 1, 3)}.{_digits(rng, 2, 2)}"
    if kind == 3:
        return f"20{_digits(rng, 2, 2)}-{rng.randint(1, 13):02d}-{rng.randint(1, 29):02d}"
    if kind == 4:
        return f"{rng.randint(24):02d}:{rng.randint(60):02d}"
    return f"v{rng.randint(1, 10)}.{rng.randint(0, 20)}"


def random_text(rng: np.random.RandomState, max_words: int = 1) -> str:
    """A short label: digits, a word, a mixed token, or (when allowed) a few of them with spaces."""
    parts = []
    for _ in range(1 + rng.randint(max_words)):
        kind = rng.randint(3)
        parts.append(_digits(rng, 3, 8) if kind == 0 else _word(rng) if kind == 1 else _mixed(rng))
    return " ".join(parts)


@dataclass(frozen=True)
class Line:
    """One line drawn as coverage (0..255, 'L') with the box a labeller would draw, in its own pixels."""

    text: str
    mask: np.ndarray  # uint8 [H, W], ink coverage
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive): ink columns, cap-to-descender rows


def draw_line(text: str, face: ImageFont.FreeTypeFont, pad: int) -> Line:
    """Draw ``text`` on its baseline with ``pad`` pixels around the line box.

    The line box runs from the ink's first to last column, and from the cap height to the descender of
    the face (or the ink, where it goes further): a crop of "ace" is as tall as one of "Hg", as a text
    detector's box would be, so the recognizer sees x-height letters at their usual scale.
    """
    ref = face.getbbox("Hg", anchor="ls")
    ink = face.getbbox(text, anchor="ls")
    top, bottom = min(ref[1], ink[1]), max(ref[3], ink[3])
    width = ink[2] - min(ink[0], 0) + 2 * pad
    canvas = Image.new("L", (width, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - min(ink[0], 0), pad - top), text, fill=255, font=face, anchor="ls")
    mask = np.asarray(canvas)
    cols = np.nonzero(mask.max(axis=0))[0]
    x0, x1 = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (pad, pad + 1)
    return Line(text, mask, (x0, pad, x1, pad + bottom - top))


def compose(mask: np.ndarray, rng: np.random.RandomState, dark_max: int = 80, light_min: int = 190) -> np.ndarray:
    """Dark ink over light paper, each grey with a slight tint: RGB uint8 from a coverage mask."""
    paper = np.clip(rng.randint(light_min, 256) + rng.randint(-12, 13, size=3), 0, 255).astype(np.float32)
    ink = np.clip(rng.randint(0, dark_max + 1) + rng.randint(-15, 16, size=3), 0, 255).astype(np.float32)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    return np.round(paper * (1.0 - alpha) + ink * alpha).astype(np.uint8)


def degrade(image: np.ndarray, rng: np.random.RandomState, blur: float, noise: float) -> np.ndarray:
    """Scanner-like damage: Gaussian blur of radius up to ``blur`` pixels, then additive noise of amplitude
    up to ``noise`` grey levels (a sum of two uniforms: triangular, near Gaussian, and exact everywhere)."""
    radius = blur * rng.random_sample()
    if radius > 0.3:
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
    amplitude = noise * rng.random_sample()
    jitter = rng.random_sample(image.shape) + rng.random_sample(image.shape) - 1.0
    return np.clip(np.round(image + amplitude * jitter), 0, 255).astype(np.uint8)


def render_crop(rng: np.random.RandomState, max_ratio: float, max_words: int = 1) -> tuple[np.ndarray, str]:
    """A text-line crop as a detector would cut it, with its text; no wider than ``max_ratio`` x its height.

    Texts too wide for the model's input are drawn again rather than squeezed, so the set measures reading,
    not a resize artifact (rejection keeps the stream deterministic).
    """
    for _ in range(100):
        text = random_text(rng, max_words)
        face = font(_choice(rng, FONT_FILES), int(rng.randint(20, 45)))
        line = draw_line(text, face, pad=face.size // 2)
        x0, y0, x1, y1 = line.box
        # Margins as a detector's unclipped box leaves them: a little above and below, a bit more at the ends.
        my, mx = int(rng.randint(1, 1 + face.size // 5)), int(rng.randint(2, 2 + face.size // 3))
        crop = line.mask[y0 - my : y1 + my, max(x0 - mx, 0) : x1 + mx]
        if crop.shape[1] <= max_ratio * crop.shape[0]:
            break
    # An input too narrow for any text (it would take 100 draws) gets the last one, squeezed by the resize.
    return degrade(compose(crop, rng), rng, blur=1.2, noise=24.0), text


@dataclass(frozen=True)
class Page:
    image: np.ndarray  # RGB uint8 [H, W, 3]
    lines: tuple[str, ...]
    boxes: tuple[tuple[int, int, int, int], ...]  # x0, y0, x1, y1 (exclusive) per line, page pixels


def render_page(rng: np.random.RandomState, height: int, width: int, max_lines: int = 9) -> Page:
    """A page of up to ``max_lines`` lines stacked top to bottom at random indents, with their line boxes
    (a line that would not fit is left out).

    Lines are kept apart by at least half a line's height, as in printed text, so the truth is one box
    per line and no detector is asked to split touching lines.
    """
    mask = np.zeros((height, width), np.uint8)
    texts, boxes = [], []
    y = int(rng.randint(10, 40))
    for _ in range(int(rng.randint(2, max_lines + 1))):
        face = font(_choice(rng, FONT_FILES), int(rng.randint(14, 41)))
        line = draw_line(random_text(rng, max_words=4), face, pad=2)
        x0, y0, x1, y1 = line.box
        if line.mask.shape[1] > width - 20 or y + line.mask.shape[0] > height - 10:
            continue
        left = int(rng.randint(10, width - line.mask.shape[1] - 9))
        region = mask[y : y + line.mask.shape[0], left : left + line.mask.shape[1]]
        np.maximum(region, line.mask, out=region)
        texts.append(line.text)
        boxes.append((left + x0, y + y0, left + x1, y + y1))
        y += line.mask.shape[0] + int((0.5 + rng.random_sample()) * (y1 - y0))
    image = degrade(compose(mask, rng, dark_max=60, light_min=200), rng, blur=0.8, noise=16.0)
    return Page(image, tuple(texts), tuple(boxes))


def bilinear(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Float bilinear resampling of [H, W, ...] with OpenCV's INTER_LINEAR geometry: half-pixel centres,
    edges clamped, no antialiasing filter when shrinking."""

    def taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(n_out, dtype=np.float32) + 0.5) * np.float32(n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        return lo, np.minimum(lo + 1, n_in - 1), (pos - lo).astype(np.float32)

    y0, y1, fy = taps(height, values.shape[0])
    x0, x1, fx = taps(width, values.shape[1])
    fy = fy.reshape(-1, *[1] * (values.ndim - 1))
    fx = fx.reshape(1, -1, *[1] * (values.ndim - 2))
    src = values.astype(np.float32)
    rows = src[y0] * (1 - fy) + src[y1] * fy
    return rows[:, x0] * (1 - fx) + rows[:, x1] * fx


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv2.resize(image, (width, height))`` for uint8 images, which is how PaddleOCR and RapidOCR size a
    crop; OpenCV's fixed-point weights can land 1 grey level away."""
    return np.clip(np.round(bilinear(image, height, width)), 0, 255).astype(np.uint8)


def to_bgr_chw(image: np.ndarray) -> np.ndarray:
    """PaddleOCR models were trained on OpenCV-decoded images: channels in B, G, R order, then CHW."""
    return np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1))
