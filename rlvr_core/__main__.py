"""`python -m rlvr_core` is the `rlvr` command."""

from .cli import main

raise SystemExit(main())
