"""Tables across runs and seeds, computed from run folders only.

Read in this order: stats (t intervals, per-group means), keys (configuration keys, reading order),
base (table names, value columns, the Tables container, a run's final value and score), then the table
families, each owning its value and long-table columns: compare (the first view; it assembles all
families in `build`), quantities (the second view), batch (the batch axis), long (their per-seed rows);
outputs writes and reads a compare folder's tables. Nothing here draws: figures/ is above.
"""
