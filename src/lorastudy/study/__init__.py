"""Running a study's arms: the config, the data, the models and LoRA, class weighting, training one
arm x seed, and where the runs train (execution). Writes `data/` and `runs/`."""
