"""The commented study file `lorastudy init` writes: it extends a profile or a file and states only the data."""

from __future__ import annotations

from pathlib import Path

from lorastudy.study.config_loading import load_config


def starter_file(path: Path, base: str, base_ref: str) -> str:
    """The commented study file `lorastudy init` writes at `path`: extends `base` (written as `base_ref`), data keys first."""
    base_config = load_config(base)
    return STARTER.format(name=path.stem, file=path.name, base=base_ref, max_length=base_config.data.max_length,
                          arms=", ".join(base_config.arms))


STARTER = """\
# {name}: a lorastudy study. It extends `{base}`: every setting not written here comes
# from there (sections merge key by key; a list replaces the base's list). State only what differs.
# Check the data before training:  lorastudy data --config {file}
# Run the study:                   lorastudy run --config {file}
extends: {base}
name: {name}
output_dir: runs/{name}

# Your data: a .csv, .jsonl or .parquet file (or hf:<dataset id>) with a text and a label column.
data:
  source: my_data.csv        # relative paths start at the folder you run lorastudy from
  text_column: text
  label_column: label
  # split_column: split      # a column of train/val/test values, if the file is already split
  # max_length: {max_length}           # tokens per text; `lorastudy data` reports the share of longer texts
  # deduplicate: true        # drop texts that occur in more than one split (train/test leakage)

# The split when the file has none: stratified fractions of all rows (the base's row caps are lifted).
split:
  train_size: null
  val_size: null
  test_size: null
  val_fraction: 0.1
  test_fraction: 0.2

# Everything else comes from `{base}`. Change single values, for example:
# seeds: [42, 43, 44]
# arms: [{arms}]
# train:
#   epochs: 1
"""
