"""Realistic sample inputs for output-parity checks, one model call at batch 1 each.

Uniform noise is a poor probe: it drives a trained network where real data never goes (all of PP-OCR's
detector lights up, or none of it), so two runtimes can agree on noise and disagree on a photo. Each task
gets inputs shaped like its data instead, in the manifest's exact shapes and dtypes:

* OCR models: the labelled task's own inputs (rendered crops and pages);
* image models: smooth random pictures, normalized with the ImageNet mean and std (torchvision, RGB);
* token encoders: [CLS] ids [SEP] then padding, with an attention mask of ones then zeros;
* voice activity: speech-like bursts (a few harmonics under an envelope, plus noise), zero state, sr as given;
* anything else: `bench.execution.inputs.make_input` over each input's declared range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from bench.case import InputSpec
from bench.execution.inputs import DTYPES, make_input
from bench.models.tasks import task_for
from bench.models.tasks.render import bilinear

if TYPE_CHECKING:
    from bench.models.zoo import ZooModel

Sample = dict[str, np.ndarray]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# BERT's WordPiece conventions; whole words start at 1996 in its 30522-entry vocabulary.
PAD, CLS, SEP, FIRST_WORD = 0, 101, 102, 1996


def _cast(spec: InputSpec, values: np.ndarray) -> np.ndarray:
    """Exactly the manifest's shape and dtype, C-ordered (not ``np.ascontiguousarray``: it turns a scalar
    input such as silero's ``sr`` into shape (1,))."""
    return np.array(np.asarray(values).reshape(spec.shape_at(1)), dtype=DTYPES[spec.dtype], order="C")


def _is_image(spec: InputSpec) -> bool:
    shape = spec.shape_at(1)
    return len(shape) == 4 and shape[1] in (1, 3) and np.dtype(DTYPES[spec.dtype]).kind == "f"


def smooth_image(channels: int, height: int, width: int, rng: np.random.RandomState) -> np.ndarray:
    """[channels, H, W] in [0, 1]: a coarse random colour field blown up bilinearly (large smooth regions
    and gradients, like a photo out of focus), with a little fine grain on top."""
    grid = int(rng.randint(3, 9))
    coarse = rng.random_sample((grid, grid, channels)).astype(np.float32)
    field = bilinear(coarse, height, width).transpose(2, 0, 1)
    grain = (rng.random_sample(field.shape) - 0.5).astype(np.float32) * np.float32(0.06)
    return np.clip(field + grain, 0.0, 1.0)


def image_sample(specs: tuple[InputSpec, ...], rng: np.random.RandomState) -> Sample:
    out = {}
    for spec in specs:
        if not _is_image(spec):
            out[spec.name] = _cast(spec, make_input(spec, 1, rng))
            continue
        _, c, h, w = spec.shape_at(1)
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if c == 3 else (np.float32(0.5), np.float32(0.25))
        pixels = smooth_image(c, h, w, rng)
        out[spec.name] = _cast(spec, (pixels - np.reshape(mean, (-1, 1, 1))) / np.reshape(std, (-1, 1, 1)))
    return out


def token_sample(specs: tuple[InputSpec, ...], rng: np.random.RandomState) -> Sample:
    """One sentence of random length: ids and mask share it; token type ids are all zero (one segment)."""
    seq = max((s.shape_at(1)[-1] for s in specs if s.shape), default=1)
    length = int(rng.randint(max(2, seq // 4), seq + 1))
    out = {}
    for spec in specs:
        name = spec.name.lower()
        if "mask" in name:
            values = (np.arange(seq) < length).astype(np.int64)
        elif "type" in name:
            values = np.zeros(seq, np.int64)
        elif "position" in name:
            values = np.arange(seq, dtype=np.int64)
        elif "ids" in name and spec.shape:
            values = _token_ids(spec, seq, length, rng)
        else:
            values = make_input(spec, 1, rng)
        out[spec.name] = _cast(spec, values)
    return out


def _token_ids(spec: InputSpec, seq: int, length: int, rng: np.random.RandomState) -> np.ndarray:
    high = int(spec.high)
    low = FIRST_WORD if high > FIRST_WORD else max(int(spec.low), 1)
    ids = np.full(seq, PAD, np.int64)
    ids[:length] = rng.randint(low, high + 1, size=length)
    if high > SEP:  # a BERT-sized vocabulary: frame the sentence as its tokenizer does
        ids[0], ids[length - 1] = CLS, SEP
    return ids


def speech_like(n: int, sample_rate: int, rng: np.random.RandomState) -> np.ndarray:
    """``n`` samples in [-1, 1]: most windows hold a voiced burst (a pitch of 90-250 Hz and three harmonics
    under a raised-cosine envelope), the rest only background noise, as a VAD sees a conversation.
    ``np.sin`` may differ in the last bit between numpy builds: fine for a parity probe, never a label."""
    t = np.arange(n, dtype=np.float64) / sample_rate
    wave = np.zeros(n)
    if rng.random_sample() < 0.75:
        pitch = 90 + 160 * rng.random_sample()
        for harmonic in range(1, 5):
            wave += np.sin(2 * np.pi * pitch * harmonic * t + 2 * np.pi * rng.random_sample()) / harmonic
        start, span = int(rng.randint(0, n // 4 + 1)), int(rng.randint(n // 2, n + 1))
        envelope = np.zeros(n)
        envelope[start : start + span] = np.hanning(span)[: n - start]
        wave *= (0.1 + 0.5 * rng.random_sample()) * envelope / 2.1
    noise = (rng.random_sample(n) + rng.random_sample(n) - 1.0) * (0.002 + 0.02 * rng.random_sample())
    return np.clip(wave + noise, -1.0, 1.0)


def audio_sample(specs: tuple[InputSpec, ...], rng: np.random.RandomState) -> Sample:
    """The float waveform input gets speech; state and sample rate keep their declared constants."""
    rate = next((int(s.low) for s in specs if s.name.lower() in ("sr", "sample_rate")), 16000)
    out = {}
    for spec in specs:
        shape = spec.shape_at(1)
        if np.dtype(DTYPES[spec.dtype]).kind == "f" and len(shape) == 2 and spec.high > spec.low:
            out[spec.name] = _cast(spec, speech_like(shape[-1], rate, rng))
        else:
            out[spec.name] = _cast(spec, make_input(spec, 1, rng))
    return out


def generic_sample(specs: tuple[InputSpec, ...], rng: np.random.RandomState) -> Sample:
    return {spec.name: _cast(spec, make_input(spec, 1, rng)) for spec in specs}


# Keyed by the manifest's ``task``; a task not listed gets the generic ranges.
MAKERS: dict[str, Callable[[tuple[InputSpec, ...], np.random.RandomState], Sample]] = {
    "image-classification": image_sample,
    "object-detection": image_sample,
    "feature-extraction": token_sample,
    "fill-mask": token_sample,
    "text-classification": token_sample,
    "voice-activity-detection": audio_sample,
}


def sample_inputs(model: ZooModel, k: int, seed: int) -> list[Sample]:
    """``k`` inputs for ``model`` at batch 1; the same seed gives the same arrays."""
    task = task_for(model.name)
    if task is not None:
        return task.dataset(model, k, seed).inputs
    maker = MAKERS.get(model.task, generic_sample)
    rng = np.random.RandomState(seed)
    return [maker(model.inputs, rng) for _ in range(k)]
