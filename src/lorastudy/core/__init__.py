"""Infrastructure every layer may use: errors, atomic artifact I/O, integrity records, the run lock,
the machine (runtime), prose counting and narrow silencing of library noise. Imports nothing above it."""
