"""Model files checked from their headers alone: safetensors weights and GGUF files, without loading a tensor.

A damaged or truncated weights file is otherwise found only when its arm's turn comes to load it, after
every earlier arm has trained. These checks read a few bytes to a few megabytes (a GGUF's vocabulary) and
raise `ValueError` (or the safetensors library's own error) naming what is wrong, for `artifacts.reading`
to turn into the usual one-line error.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)  # v1 counted in 32 bits and is no longer written; transformers reads v2 and v3
# Metadata value types with a fixed width (struct format without byte order); 8 = string, 9 = array.
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_DEFAULT_ALIGNMENT = 32  # llama.cpp's, when the file sets no general.alignment


@dataclass(frozen=True)
class GgufHeader:
    """What a GGUF file's header says: enough to know the file is whole and what it holds."""

    version: int
    architecture: str | None
    metadata: dict[str, object]  # scalars and strings; arrays as their length
    tensor_count: int
    data_end: int  # the offset just past the last tensor's bytes
    file_size: int

    @property
    def has_tokenizer(self) -> bool:
        return "tokenizer.ggml.model" in self.metadata and "tokenizer.ggml.tokens" in self.metadata


def check_safetensors(path: Path) -> list[str]:
    """The tensor names of a safetensors file whose header parses and whose data the file fully covers.

    safetensors checks both when it opens a file (a memory map; no tensor is read, and torch is not needed)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        names = list(handle.keys())
    if not names:
        raise ValueError("it holds no tensors")
    return names


def read_gguf_header(path: Path) -> GgufHeader:
    """Parse a GGUF file's metadata and tensor table (memory-mapped: the tensor data is never read) and check
    that the file holds every byte its tensor table points at."""
    size = Path(path).stat().st_size
    if size < 24:
        raise ValueError(f"it is {size} bytes long, shorter than a GGUF header (24 bytes)")
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as blob:
        if blob[:4] != GGUF_MAGIC:
            raise ValueError(f"it does not start with the GGUF magic bytes (found {bytes(blob[:4])!r})")
        order = "<"
        (version,) = struct.unpack_from("<I", blob, 4)
        if version not in GGUF_VERSIONS and struct.unpack_from(">I", blob, 4)[0] in GGUF_VERSIONS:
            order, version = ">", struct.unpack_from(">I", blob, 4)[0]  # a big-endian file
        if version not in GGUF_VERSIONS:
            raise ValueError(f"it is GGUF version {version}; only versions 2 and 3 can be read")
        try:
            return _parse(blob, order, version, size)
        except struct.error:
            raise ValueError(f"it ends inside its own header (the file is {size} bytes long: truncated)") from None


def _parse(blob: mmap.mmap, order: str, version: int, size: int) -> GgufHeader:
    def unpack(fmt: str, pos: int) -> tuple:
        return struct.unpack_from(order + fmt, blob, pos)

    def string(pos: int) -> tuple[str, int]:
        (length,) = unpack("Q", pos)
        if pos + 8 + length > size:
            raise struct.error("string past the end")
        return bytes(blob[pos + 8:pos + 8 + length]).decode("utf-8", errors="replace"), pos + 8 + length

    def value(pos: int, kind: int) -> tuple[object, int]:
        if kind in _SCALAR:
            return unpack(_SCALAR[kind], pos)[0], pos + struct.calcsize(_SCALAR[kind])
        if kind == 8:
            return string(pos)
        if kind == 9:
            element, count = unpack("IQ", pos)
            pos += 12
            if element in _SCALAR:
                return count, pos + count * struct.calcsize(_SCALAR[element])
            if element == 8:  # a vocabulary or merge table: only the lengths are needed to walk it
                for _ in range(count):
                    pos += 8 + unpack("Q", pos)[0]
                if pos > size:
                    raise struct.error("array past the end")
                return count, pos
            if element != 9:
                raise ValueError(f"its metadata holds an array of unknown type {element}")
            for _ in range(count):
                _, pos = value(pos, element)
            return count, pos
        raise ValueError(f"its metadata holds a value of unknown type {kind}")

    tensor_count, kv_count = unpack("QQ", 8)
    pos, metadata = 24, {}
    for _ in range(kv_count):
        key, pos = string(pos)
        (kind,) = unpack("I", pos)
        metadata[key], pos = value(pos + 4, kind)
    tensors = []
    for _ in range(tensor_count):
        _, pos = string(pos)
        (dims,) = unpack("I", pos)
        shape = unpack(f"{dims}Q", pos + 4)
        ggml_type, offset = unpack("IQ", pos + 4 + 8 * dims)
        pos += 4 + 8 * dims + 12
        tensors.append((ggml_type, shape, offset))
    alignment = int(metadata.get("general.alignment", _DEFAULT_ALIGNMENT) or _DEFAULT_ALIGNMENT)
    data_start = (pos + alignment - 1) // alignment * alignment
    data_end = max((data_start + offset + _tensor_bytes(kind, shape) for kind, shape, offset in tensors),
                   default=pos)
    if data_end > size:
        raise ValueError(f"its tensors need {data_end:,} bytes but the file has {size:,} (truncated)")
    architecture = metadata.get("general.architecture")
    return GgufHeader(version, architecture if isinstance(architecture, str) else None, metadata, tensor_count,
                      data_end, size)


def _tensor_bytes(ggml_type: int, shape: tuple[int, ...]) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise ValueError(f"it holds a tensor of unknown ggml type {ggml_type}") from None
    elements = 1
    for dim in shape:
        elements *= dim
    return elements // block * block_bytes


def gguf_architectures() -> frozenset[str] | None:
    """The GGUF architectures this transformers can load (None when it does not say)."""
    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
    except ImportError:
        return None
    return frozenset(GGUF_SUPPORTED_ARCHITECTURES)
