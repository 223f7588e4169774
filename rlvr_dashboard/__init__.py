"""The RLVR Lens dashboard: Streamlit pages and their helpers. `app.py` here is Streamlit's entry script
(what `rlvr serve` runs from an installed wheel); `app.py` at the top of a checkout runs the same `main`.

- `views/`: the pages, one file each (runs, layers, spectra, alignment, reward, substitution, jobs).
  Thin: they ask the cache's named queries (`rlvr_core.cache.queries`), draw with plotly and submit typed
  job requests; no math, no SQL, no paths of the cache. Named `views/`, not `pages/`: with a `pages/`
  folder next to `app.py` Streamlit would also run each file on its own when a session starts on a deep
  link, skipping `app.py`'s sign-in check.
- `access`: who is looking and what they may do (sign-in, read-only, data roots).
- `ui`: the widgets and services pages share (URL-backed selections, the cache, job submission and the
  queue, the demo's progress).
- `charts`: figure helpers shared by the pages.

May import: streamlit, plotly, and of `rlvr_core` only `cache`, `cli.requests`, `service` (jobs, data
roots), `system` (settings), `readers` (checking a run folder) and `math.heavytail` (drawing a fitted
power law). Never torch: a test derives this process's modules from these files and checks it.
"""
