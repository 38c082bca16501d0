"""What a person reads: terminal progress and tables (terminal), the generated results/README.md
(readme), and the self-contained HTML page of `ics report` (page/)."""
