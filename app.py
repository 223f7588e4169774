"""RLVR Lens dashboard from a checkout: `streamlit run app.py`. The dashboard itself is the package's
`rlvr_dashboard/app.py` (what `rlvr serve` runs from an installed wheel); this file runs the same `main`, so
both entry points show the same pages behind the same sign-in."""

from rlvr_dashboard.app import main

main()
