"""The job service: what runs the work users queue, and what a shared server allows.

- `worker`: `rlvr worker` claims jobs from the cache's queue (`cache.queue`) and runs each as its own
  process (locally, or as Ray tasks), with leases, heartbeats and cancellation.
- `watcher`: `rlvr watcher` follows the registered watches (`cache.watches`), queueing an analysis job per
  complete checkpoint and an ingestion job per grown log.
- `serve`: `rlvr serve` supervises the dashboard, its workers and the watcher as one service.
- `dataroots`: the allow-list of folders a shared server may read.
- `health`: the Docker image's HEALTHCHECK, asking the port and address the settings give.

May import: `rlvr_core.cache`, `rlvr_core.readers`, `rlvr_core.system`, `rlvr_core.errors`. Never torch (the
workers start jobs as processes; the dashboard imports `dataroots`).
"""
