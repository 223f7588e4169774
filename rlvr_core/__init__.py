"""RLVR Lens core library: read RL checkpoints, compute per-layer spectra, cache them for the dashboard.

Subpackages, bottom to top (each may import only those above it in this list, and says so itself):

- `errors` (a module): the one error hierarchy.
- `system`: device strings, libc calls, and the settings (TOML file + environment + flags).
- `math`: spectra, heavy-tail fits, alignment, rank-k parts, grading, the demo's arithmetic task. Arrays
  in, numbers out; no I/O.
- `readers`: checkpoints, run layouts, tensor names, training logs, evaluation sets.
- `cache`: the Parquet cache's one owner: layout, schemas, atomic writes, locked merges, named queries.
- `pipelines`: analyze, logs, substitute, evaluate, compare, predict, correlate: inputs -> math -> cache.
- `report`: the plotly figure builders (every chart), a run's HTML report, publication figures.
- `training`: periodic rank-k substitution inside users' training loops (TRL / Trainer callback).
- `demo`: the built-in tiny GRPO run.
- `service`: workers, the watcher of registered watches, `rlvr serve`, data roots.
- `cli`: the `rlvr` command line, and typed job requests.
- `fixtures`: builders of tiny real checkpoints with planted structure, for tests and benchmarks.

The dashboard (package `rlvr_dashboard`, entry script `rlvr_dashboard/app.py`) sits on top and imports only
`cache`, `cli.requests`, `service`, `system`, `report` (figures) and `math` (intervals, the monitor's rule);
it never imports torch.
"""

__version__ = "0.1.0"
