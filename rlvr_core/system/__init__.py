"""The process and the machine: settings, data roots, device strings, the few libc calls the tool makes,
reproducible CPU kernels.

- `settings`: the TOML settings file and its environment overrides, resolved alike for every entry point.
- `dataroots`: the allow-list of folders a shared server may read, checked at every file opened.
- `devices`: the one parser of device strings (`auto`, `cpu`, `cuda`, `cuda:N`), and their resolution
  against the GPUs torch sees (torch is imported only there, lazily).
- `libc`: the one place libc is loaded: die with the parent process (PR_SET_PDEATHSIG) and return large
  freed blocks to the OS (mallopt).
- `determinism`: the CPU-kernel settings (MKL/OpenMP dynamic threads off, AVX2 code paths) that make a
  rerun of the demo give the same numbers; applied before torch loads.
- `extras`: the package's optional parts (pyproject's extras) and the check a command makes before it
  needs one (a one-line error naming the extra to install).

May import: `rlvr_core.errors` only.
"""
