"""Writing the note: `findings/` decides what the numbers say (typed data, one module per section);
`layout`, `tables`, `formatting` and `figures` lay it out; `templates/` only word it. Writes `note/`."""
