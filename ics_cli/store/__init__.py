"""Run folders on disk: the one CSV cell rule and safe readers (files), the tables' columns and checks
(schema), the units table (units), the tables of a run being written (logs), reading runs back (runs),
output sets written whole (staging), one writer per run (lock), checkpoints and model.pt written whole
(checkpoint), provenance, and TensorBoard events.

Nothing here trains or aggregates; it imports config, quantities (their table columns) and errors.
"""
