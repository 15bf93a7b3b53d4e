"""The one calibration set per model, shared by every runtime's int8 quantizer: the same samples, in the same
order, for ONNX Runtime, OpenVINO and MNN, and its hash on every int8 row (conversion_options.calibration_sha256).

Drawn from the zoo's realistic sample generators and task data with their own seeds, so calibration never sees
the parity inputs or the task-accuracy data; seeded uniform values within the declared ranges for a user's model.
"""

from __future__ import annotations

import hashlib

import numpy as np

from bench.case import Case
from bench.execution.inputs import make_inputs

CALIBRATION_SAMPLES = 16
CALIBRATION_SEED_OFFSET = 2000  # parity inputs use other seeds (bench.execution.parity), task data the case's own


def calibration_inputs(case: Case) -> list[dict[str, np.ndarray]]:
    """``CALIBRATION_SAMPLES`` inputs at batch 1."""
    seed = case.seed + CALIBRATION_SEED_OFFSET
    if case.model.generated_inputs:
        return [make_inputs(case.model.inputs, 1, seed + i) for i in range(CALIBRATION_SAMPLES)]
    from bench.models.tasks import sample_inputs
    from bench.models.zoo import load_manifest

    return sample_inputs(load_manifest()[case.model.name], CALIBRATION_SAMPLES, seed)


def at_batch(sample: dict[str, np.ndarray], case: Case) -> dict[str, np.ndarray]:
    """One batch-1 sample repeated along each input's batch axis to the case's batch (a static-shape quantizer
    needs the case's shapes; the statistics are those of the batch-1 sample)."""
    axes = {spec.name: spec.batch_axis for spec in case.model.inputs}
    return {name: array if axes.get(name) is None or case.batch == 1
            else np.ascontiguousarray(np.repeat(array, case.batch, axis=axes[name]))
            for name, array in sample.items()}


def calibration_sha256(samples: list[dict[str, np.ndarray]]) -> str:
    """Hash of the samples' names, dtypes, shapes and bytes, in order."""
    digest = hashlib.sha256()
    for sample in samples:
        for name in sorted(sample):
            array = np.ascontiguousarray(sample[name])
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()
