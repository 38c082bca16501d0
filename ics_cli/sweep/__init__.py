"""Many runs: grids and TOML, the local process pool and Ctrl-C (run), one run in a worker (worker),
and the Ray backend (ray). run.py and ray.py both import worker.py; neither imports the other back
(run.py imports ray lazily, only under --backend ray)."""
