"""The process and the machine: device strings and the few libc calls the tool makes.

- `devices`: the one parser of device strings (`auto`, `cpu`, `cuda`, `cuda:N`), and their resolution
  against the GPUs torch sees (torch is imported only there, lazily).
- `libc`: the one place libc is loaded: die with the parent process (PR_SET_PDEATHSIG) and return large
  freed blocks to the OS (mallopt).

May import: `rlvr_core.errors` only.
"""
