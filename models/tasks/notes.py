"""Basic Pitch note transcription: synthesized notes at known pitches and onsets, decoded into notes as Basic Pitch
decodes them, scored note by note with mir_eval's rules.

One model call is one of Basic Pitch's windows: 43844 samples at 22050 Hz (2 s less one hop of 256), 172 frames
out. Each window holds one to three harmonic tones (a plucked-string envelope, five partials) at MIDI pitches
40-84 that start 0.15-1.25 s in and last 0.25-0.65 s, sometimes overlapping, over faint noise; every choice comes
from the seed (``randint`` / ``random_sample`` only, as in ``render.py``), so the labels are exact everywhere
and only ``np.sin``'s last bit may vary between numpy builds.

Decoding is a port of basic-pitch 0.4.0's ``note_creation.output_to_notes_polyphonic`` with ``predict``'s
defaults (onset threshold 0.5, frame threshold 0.3, minimum note length 127.70 ms = 11 frames, onsets inferred
from frame jumps, the "melodia trick"); basic-pitch itself is not imported (it pins an old TensorFlow). Scoring
is ``mir_eval.transcription.match_notes`` per window (onset within 50 ms, pitch within 50 cents, offsets not
judged), the matches summed over the set: note precision, recall and F1; ``f1_with_offset`` also asks the offset
to be within 20% of the note's length (or 50 ms), mir_eval's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import UserError
from bench.models.tasks import TaskData

if TYPE_CHECKING:
    from bench.models.zoo import ZooModel

SAMPLE_RATE, HOP = 22050, 256
MIDI_OFFSET, N_KEYS = 21, 88  # the 88 piano keys from A0 (MIDI 21)
ONSET_THRESHOLD, FRAME_THRESHOLD = 0.5, 0.3
MIN_NOTE_FRAMES = int(np.round(127.70 / 1000 * (SAMPLE_RATE / HOP)))  # basic-pitch's predict(): 11
ENERGY_TOLERANCE = 11  # frames below the frame threshold that end a note
# The outputs by name (basic-pitch's inference.py), else by their place in the graph: onset, note, contour.
ONSET_OUTPUT, NOTE_OUTPUT = "StatefulPartitionedCall:2", "StatefulPartitionedCall:1"

INSTALL_HINT = "basic_pitch's note F1 needs mir_eval: pip install mir_eval==0.8.2 (bench's `audio` extra)"

Note = tuple[float, float, int]  # onset s, offset s, MIDI pitch


def tone(pitch: int, n: int, rng: np.random.RandomState) -> np.ndarray:
    """``n`` samples of a plucked harmonic tone: five partials (those under Nyquist) at 1/h^1.5, a 10 ms attack,
    an exponential decay and a 30 ms release."""
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12)
    t = np.arange(n) / SAMPLE_RATE
    wave = np.zeros(n)
    for h in range(1, 6):
        if f0 * h < SAMPLE_RATE / 2 - 500:
            wave += np.sin(2 * np.pi * f0 * h * t + 2 * np.pi * rng.random_sample()) / h**1.5
    envelope = np.exp(-t * (1.0 + 2.0 * rng.random_sample()))
    attack, release = min(int(0.01 * SAMPLE_RATE), n), min(int(0.03 * SAMPLE_RATE), n)
    envelope[:attack] *= np.linspace(0.0, 1.0, attack)
    envelope[n - release :] *= np.linspace(1.0, 0.0, release)
    return wave * envelope


def synth_window(n_samples: int, rng: np.random.RandomState) -> tuple[np.ndarray, list[Note]]:
    """One window of audio in [-1, 1] and its notes."""
    audio, notes = np.zeros(n_samples), []
    end = n_samples / SAMPLE_RATE - 0.1  # clear of the window's last frames, which Basic Pitch trims in use
    for _ in range(1 + rng.randint(3)):
        pitch = int(rng.randint(40, 85))
        onset = 0.15 + 1.1 * rng.random_sample()
        duration = min(0.25 + 0.4 * rng.random_sample(), end - onset)
        start, length = int(round(onset * SAMPLE_RATE)), int(round(duration * SAMPLE_RATE))
        audio[start : start + length] += (0.2 + 0.3 * rng.random_sample()) * tone(pitch, length, rng)
        notes.append((start / SAMPLE_RATE, (start + length) / SAMPLE_RATE, pitch))
    audio += (rng.random_sample(n_samples) + rng.random_sample(n_samples) - 1.0) * 0.002
    return np.clip(audio, -1.0, 1.0), notes


def note_and_onset(output: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The [frames, 88] note and onset maps of one window, by output name, else by graph order."""
    if NOTE_OUTPUT in output and ONSET_OUTPUT in output:
        note, onset = output[NOTE_OUTPUT], output[ONSET_OUTPUT]
    else:
        onset, note = list(output.values())[:2]
    as_map = [np.asarray(a, dtype=np.float64).reshape(-1, N_KEYS) for a in (note, onset)]
    return as_map[0], as_map[1]


def inferred_onsets(onsets: np.ndarray, frames: np.ndarray, n_diff: int = 2) -> np.ndarray:
    """basic-pitch's ``get_infered_onsets``: onsets where a key's frame probability jumps, scaled to the onset
    map's maximum, then the larger of the two."""
    diffs = []
    for n in range(1, n_diff + 1):
        padded = np.concatenate([np.zeros((n, frames.shape[1])), frames])
        diffs.append(padded[n:, :] - padded[:-n, :])
    jump = np.min(diffs, axis=0)
    jump[jump < 0] = 0
    jump[:n_diff, :] = 0
    if np.max(jump) > 0:  # a silent map (a broken runtime) has no jump to scale
        jump = np.max(onsets) * jump / np.max(jump)
    return np.maximum(onsets, jump)


def _clear(energy: np.ndarray, rows: slice | int, key: int) -> None:
    """A decoded note's key and its two neighbours are used up."""
    energy[rows, max(key - 1, 0) : min(key + 2, N_KEYS)] = 0


def _note_end(energy: np.ndarray, start: int, key: int) -> int:
    """The frame after the last one above the frame threshold, ENERGY_TOLERANCE frames of quiet allowed."""
    i, quiet = start + 1, 0
    while i < energy.shape[0] - 1 and quiet < ENERGY_TOLERANCE:
        quiet = quiet + 1 if energy[i, key] < FRAME_THRESHOLD else 0
        i += 1
    return i - quiet


def _onset_notes(onsets: np.ndarray, energy: np.ndarray) -> list[tuple[int, int, int]]:
    """Notes that start at an onset peak, latest first (basic-pitch's first pass); uses up their energy."""
    from scipy.signal import argrelmax

    peaks = np.zeros(onsets.shape)
    at = argrelmax(onsets, axis=0)
    peaks[at] = onsets[at]
    times, keys = np.where(peaks >= ONSET_THRESHOLD)
    notes = []
    for start, key in zip(times[::-1], keys[::-1], strict=True):
        if start >= energy.shape[0] - 1:
            continue
        end = _note_end(energy, int(start), int(key))
        if end - start <= MIN_NOTE_FRAMES:
            continue
        _clear(energy, slice(int(start), end), int(key))
        notes.append((int(start), end, int(key)))
    return notes


def _walk(energy: np.ndarray, mid: int, key: int, step: int) -> int:
    """The melodia trick's walk from ``mid`` one way, clearing as it goes: the last frame above the threshold."""
    i, quiet = mid + step, 0
    inside = (lambda j: j < energy.shape[0] - 1) if step > 0 else (lambda j: j > 0)
    while inside(i) and quiet < ENERGY_TOLERANCE:
        quiet = quiet + 1 if energy[i, key] < FRAME_THRESHOLD else 0
        _clear(energy, i, key)
        i += step
    return i - step * (1 + quiet)


def _melodia_notes(frames: np.ndarray, energy: np.ndarray) -> list[tuple[int, int, int]]:
    """Notes grown from the strongest frame left, with no onset of their own (basic-pitch's second pass)."""
    notes = []
    while np.max(energy) > FRAME_THRESHOLD:
        mid, key = (int(v) for v in np.unravel_index(np.argmax(energy), energy.shape))
        energy[mid, key] = 0
        end, start = _walk(energy, mid, key, +1), _walk(energy, mid, key, -1)
        if end - start > MIN_NOTE_FRAMES:
            notes.append((start, end, key))
    return notes


def decode_notes(note: np.ndarray, onset: np.ndarray) -> list[Note]:
    """basic-pitch 0.4.0's ``output_to_notes_polyphonic`` with predict()'s defaults, as (onset s, offset s, MIDI)."""
    energy = note.copy()
    frames = _onset_notes(inferred_onsets(onset, note), energy) + _melodia_notes(note, energy)
    return [(start * HOP / SAMPLE_RATE, end * HOP / SAMPLE_RATE, key + MIDI_OFFSET) for start, end, key in frames]


def _hz(pitches: list[int]) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitches, dtype=np.float64) - 69) / 12)


def _intervals(notes: list[Note]) -> np.ndarray:
    return np.array([[a, b] for a, b, _ in notes], dtype=np.float64).reshape(-1, 2)


def matched(reference: list[Note], estimated: list[Note], offset_ratio: float | None) -> int:
    """mir_eval's one-to-one note matching of one window: how many estimated notes hit a reference note."""
    try:
        from mir_eval.transcription import match_notes
    except ModuleNotFoundError:
        raise UserError(INSTALL_HINT) from None
    if not reference or not estimated:
        return 0
    pairs = match_notes(_intervals(reference), _hz([p for *_, p in reference]), _intervals(estimated),
                        _hz([p for *_, p in estimated]), offset_ratio=offset_ratio)
    return len(pairs)


def _f1(hits: int, n_estimated: int, n_reference: int) -> tuple[float, float, float]:
    precision = hits / n_estimated if n_estimated else 0.0
    recall = hits / n_reference if n_reference else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if hits else 0.0)


@dataclass(frozen=True)
class NoteTranscription:
    """Synthesized windows of known notes; note F1 over the whole set."""

    primary_metric: str = "f1"

    def dataset(self, model: ZooModel, n: int, seed: int) -> TaskData:
        spec = model.inputs[0]
        rng = np.random.RandomState(seed)
        inputs, labels = [], []
        for _ in range(n):
            audio, notes = synth_window(spec.shape[1], rng)
            inputs.append({spec.name: audio.astype(np.float32).reshape(spec.shape)})
            labels.append(notes)
        return TaskData(inputs, labels)

    def score(self, outputs: list[dict[str, np.ndarray]], labels: list[Any]) -> dict[str, float]:
        estimated = [decode_notes(*note_and_onset(o)) for o in outputs]
        n_est, n_ref = sum(map(len, estimated)), sum(map(len, labels))
        onset_hits = sum(matched(r, e, None) for r, e in zip(labels, estimated, strict=True))
        offset_hits = sum(matched(r, e, 0.2) for r, e in zip(labels, estimated, strict=True))
        precision, recall, f1 = _f1(onset_hits, n_est, n_ref)
        return {"f1": f1, "precision": precision, "recall": recall, "f1_with_offset": _f1(offset_hits, n_est, n_ref)[2],
                "notes": float(n_ref)}
