"""User-facing errors: one line that names the problem and the fix.

The CLI turns a `StudyError` into that line and exit code 2; anything else is a
bug and keeps its traceback (shown with `--debug`).
"""


class StudyError(Exception):
    """A problem the user can fix: bad input, bad config, missing resource."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem} Fix: {fix}")

    def one_line(self) -> str:
        return str(self).replace("\n", " ")
