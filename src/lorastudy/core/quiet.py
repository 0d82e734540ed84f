"""What transformers prints that is not for the user, silenced narrowly around lorastudy's own calls into it.

Two kinds, both once per run (and again when the latency stage or `predict` loads a run):

* PEFT asks every model it wraps for `is_gradient_checkpointing`, which transformers 5 deprecates with a
  FutureWarning the user can do nothing about. Only that warning, from that module, is ignored, and only
  inside `quiet_library_calls`: the user's own warnings, and every other library warning, still show.
* transformers' own progress bars for loading and saving a model ("Loading weights", "Writing model shards")
  finish in well under a second and leave two lines each in the log; the run's training bar shows the
  progress that matters. Other bars (hub downloads, GGUF dequantisation) still show.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

# (message regex, category, module regex) of the library warnings silenced inside `quiet_library_calls`.
LIBRARY_WARNINGS = (
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning, r"transformers\.modeling_utils"),
)
# transformers' progress bars (their `desc`) hidden inside `quiet_library_calls`.
LIBRARY_BARS = frozenset({"Loading weights", "Writing model shards"})


@contextlib.contextmanager
def quiet_library_calls() -> Iterator[None]:
    """Inside: the LIBRARY_WARNINGS are ignored and transformers' LIBRARY_BARS are not drawn; both restored after."""
    with warnings.catch_warnings():
        for message, category, module in LIBRARY_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category, module=module)
        with _hidden_bars():
            yield


@contextlib.contextmanager
def _hidden_bars() -> Iterator[None]:
    """transformers' tqdm hook, chained to any hook already set; without the hook (older 5.x) the bars stay."""
    from transformers.utils import logging as hf_logging

    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    if set_hook is None:
        yield
        return
    previous = set_hook(None)

    def hook(factory, args, kwargs):
        if kwargs.get("desc") in LIBRARY_BARS:
            kwargs = {**kwargs, "disable": True}
        return previous(factory, args, kwargs) if previous is not None else factory(*args, **kwargs)

    set_hook(hook)
    try:
        yield
    finally:
        set_hook(previous)
