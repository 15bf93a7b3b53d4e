"""What runs inside a case's worker process: the worker's phases, the one clock (timing, stats), inputs,
conversion plumbing for runners (convert, graph, variants), and the output checks (parity, accuracy, task_eval)."""
