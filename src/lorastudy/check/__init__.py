"""Checking a note, generated or written by a person: every number read in context and matched to a
fact of the run (`facts`), and the rubric's evidence found per section. Reads a note and a run; writes nothing."""
