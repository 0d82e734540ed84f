"""Reading the user's text files.

Files must be UTF-8: undecodable bytes are an error naming the file and line,
because silently replaced characters would change the texts being classified.
"""

from __future__ import annotations

from pathlib import Path

from lorastudy.core.errors import StudyError


def read_utf8(path: Path) -> str:
    """The file as UTF-8 text; undecodable bytes are an error that names the file and line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StudyError(f"File {path} does not exist.", "check the path in the config.") from None
    except OSError as exc:
        raise StudyError(f"Cannot read data file {path}: {exc.strerror}.", "check the path and its permissions.") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise StudyError(f"{path} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}).",
                         f"re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`.") from None
