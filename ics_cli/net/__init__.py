"""The network and what it learns from: datasets (data), the loss per task (tasks), what one update sees
(sampling), the models with their named blocks (models), the normalization registry (norms) and the norm
modules torch lacks (batchnorms), Santurkar's noise (noise), population statistics (population).

Imports only errors and metrics from above; nothing here reads or writes a run folder.
"""
