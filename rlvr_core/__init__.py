"""RLVR Lens core library: read RL checkpoints, compute per-layer spectra, cache them for the dashboard.

Modules (one concern each): `errors` (the error hierarchy), `naming` (tensor name -> layer/module),
`checkpoint` (safetensors reading), `layout` (run folders -> steps), `spectral` (the math), `heavytail`,
`alignment`,
`store` (Parquet cache + DuckDB views), `analysis` (the worker's analysis job), `fixtures` (tiny
checkpoints for tests and demos), `cli` (the `rlvr` command).
"""

__version__ = "0.1.0"
