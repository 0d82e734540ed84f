"""lorastudy: an honest study of LoRA on an encoder and a decoder for long-tail text classification.

The Python API mirrors the CLI, for notebooks:

    import lorastudy
    cfg = lorastudy.load_config("demo", ["train.epochs=1"])
    run_dir = lorastudy.run_study(cfg)
"""

from lorastudy.study.config import StudyConfig
from lorastudy.study.config_loading import load_config
from lorastudy.core.errors import StudyError

__version__ = "0.1.0"
__all__ = ["StudyConfig", "StudyError", "load_config", "run_study", "describe_data", "write_note",
           "check_note", "evaluate_study", "bench_study", "load_predictor", "export_model"]


def __getattr__(name: str):
    """Import heavy stages only when used, so `import lorastudy` stays fast."""
    lazy = {
        "run_study": "lorastudy.pipeline",
        "describe_data": "lorastudy.study.data",
        "write_note": "lorastudy.note.report",
        "check_note": "lorastudy.check.verdict",
        "evaluate_study": "lorastudy.measure.evaluation",
        "bench_study": "lorastudy.measure.latency",
        "load_predictor": "lorastudy.serve.predict",
        "export_model": "lorastudy.serve.export",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(name)
