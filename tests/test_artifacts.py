"""Atomic artifact I/O: what a damaged file does on reading."""

import pytest

from lorastudy.core import artifacts
from lorastudy.core.errors import StudyError


def test_read_jsonl_skips_only_a_torn_last_line(tmp_path):
    path = tmp_path / "log.jsonl"
    artifacts.append_jsonl(path, {"step": 1})
    artifacts.append_jsonl(path, {"step": 2})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"step": 3, "lo')  # killed mid-append
    assert artifacts.read_jsonl(path) == [{"step": 1}, {"step": 2}]


def test_read_jsonl_rejects_a_malformed_line_before_the_last(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n', encoding="utf-8")
    with pytest.raises(StudyError, match="line 2"):
        artifacts.read_jsonl(path)
