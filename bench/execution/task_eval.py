"""Task accuracy inside the worker, after timing: the zoo's labelled sets through the runtime under test.

Only the real trained models have labelled data (``bench.models.tasks``); other models get None. Scored at
batch 1, the shape every runner was prepared for at batch 1; other batch sizes are not scored.
"""

from __future__ import annotations

import json

from bench.case import Case
from bench.contract import TaskScore
from bench.plugin import Runner


def evaluate(runner: Runner, case: Case) -> TaskScore | None:
    if case.model.source == "user" or case.batch != 1:
        return None
    from bench.models.tasks import DEFAULT_N, task_for
    from bench.models.zoo import load_manifest

    task = task_for(case.model.name)
    if task is None:
        return None
    data = task.dataset(load_manifest()[case.model.name], DEFAULT_N[case.model.name], seed=case.seed)
    metrics = task.score(runner.run_each(data.inputs), data.labels)
    return TaskScore(task.primary_metric, float(metrics[task.primary_metric]), len(data.inputs),
                     json.dumps(metrics, sort_keys=True))
