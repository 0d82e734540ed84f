"""Following a study up: `lorastudy next` runs the experiment its note proposes (`plan`: what runs and what it
costs; `runner`: training, scoring and the note). Above the pipeline, whose report it re-writes."""
