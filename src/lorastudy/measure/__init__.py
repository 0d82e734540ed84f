"""Measuring what the study trained: metrics, uncertainty, mechanism probes (evaluation), latency and
memory as served, and the cost model and decision rule per deployment context. Writes `evaluation/`
and `latency/`."""
