"""Figures drawn from the compare CSVs only: style (colours from the norm registry, bands, log axes,
saving), one module per family (plots: the first view; quantities: the second; batch: the batch axis),
and draw (every figure of a folder, captions, and the figure half of the compare output set)."""
