"""The Substitution page's paired view: one comparison (by default the newest), its rank-k model against
the full model and against the base, problem by problem: the 2x2 counts, McNemar's exact p as
`rlvr compare` stored it (`math.stats.mcnemar`), and the problems gained and lost with their first
completions. Also the label every series of a comparison carries (mode, rank, keep, modules, alpha, n)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from rlvr_dashboard.text import escape
from rlvr_dashboard.ui import follow, pick

CHANCE = (
    "Chance: if the rank-k model were no better and no worse than the other one, its gains and losses would "
    "split evenly, and p would fall below 0.05 in 5% of comparisons. Solved = at least half of a problem's "
    "samples correct."
)


def comparison_label(row) -> str:
    """One comparison as a legend says it: mode, rank, where the other tensors came from, which modules,
    alpha, and how many problems x samples (and the dataset)."""
    alpha = "alpha ?" if pd.isna(row.alpha) else f"alpha {row.alpha:g}"
    samples = "?" if pd.isna(row.samples) else f"{int(row.samples)}"
    return (
        f"{row.mode} rank-{row.rank}, rest from the {row.keep}, modules {row.modules},\n"
        f"{alpha}; n = {row.n_problems} x {samples} on {row.dataset}"
    )  # two lines: a legend entry fits an 800 px wide page


def paired_section(q, comparisons: pd.DataFrame) -> str | None:
    """Draw the paired view of one chosen comparison (`comparisons`: `Queries.latest_comparisons()`, newest
    first); returns the chosen comparison's rank-k evaluation id (for the drill-down)."""
    st.subheader("Problem by problem")
    if comparisons.empty:
        return None
    labels = {
        f"{row.run} step {row.step}: {comparison_label(row)}".replace("\n", " "): row.eval_id_rank
        for row in comparisons.itertuples()
    }
    follow("paired", comparisons["eval_id_rank"].iloc[0])  # a comparison that just finished is shown first
    chosen = pick("Comparison (newest first)", list(labels), "paired")
    row = comparisons[comparisons["eval_id_rank"] == labels[chosen]].iloc[0]
    against = pick("Rank-k against", ["full", "base"], "against", radio=True)
    other, gained, lost, p = (row[f"eval_id_{against}"], row[f"gained_vs_{against}"], row[f"lost_vs_{against}"],
                              row[f"mcnemar_{against}_p"])  # fmt: skip
    problems = q.paired_problems(other, row["eval_id_rank"])
    counts = problems["outcome"].value_counts().reindex(["both", "gained", "lost", "neither"], fill_value=0)
    columns = st.columns(5)
    columns[0].metric(f"gained (rank-k only, not {against})", int(counts["gained"]))
    columns[1].metric(f"lost ({against} only)", int(counts["lost"]))
    columns[2].metric("both solve", int(counts["both"]))
    columns[3].metric("neither", int(counts["neither"]))
    columns[4].metric("McNemar exact p", "not stored" if pd.isna(p) else f"{p:.3g}")
    if pd.isna(p):
        st.info("This comparison was stored before McNemar's test was: rerun it (`rlvr compare`) to get p.")
    elif (int(gained), int(lost)) != (int(counts["gained"]), int(counts["lost"])):
        st.warning(escape(f"The stored counts ({gained} gained, {lost} lost) differ from the stored outcomes."))
    st.caption(CHANCE)
    names = {"completion_first": f"completion ({against})", "completion_second": "completion (rank-k)",
             "score_first": f"score ({against})", "score_second": "score (rank-k)"}  # fmt: skip
    changed = problems[problems["outcome"].isin(["gained", "lost"])].rename(columns=names)
    st.dataframe(changed, hide_index=True, width="stretch", key="paired-problems")
    return str(row["eval_id_rank"])
