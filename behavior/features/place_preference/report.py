"""The place-preference part of the study report: chamber occupancy per group and timepoint."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

from behavior.assays import ReportContext, ReportItem

__all__ = ["occupancy_report"]


def occupancy_report(ctx: ReportContext) -> list[ReportItem]:
    """Stacked bars: mean share of the tracked time in the paired and the unpaired chamber (and elsewhere),
    per group at each timepoint, each session's paired share as a dot; and a table of the scores' means.
    """
    from behavior.stats import timepoint_order

    m = ctx.measures
    if m.empty or "assay" not in m:
        return []
    pp = m[m["assay"] == "place_preference"]
    wide = pp.pivot_table(index=["session_id", "group", "timepoint"], columns="measure", values="value", aggfunc="mean")
    need = {"time_in_paired_fraction", "time_in_unpaired_fraction"}
    if wide.empty or not need <= set(wide.columns):
        return []
    wide = wide.reset_index()
    timepoints = timepoint_order(wide["timepoint"].astype(str))
    groups = sorted(wide["group"].astype(str).unique())
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(timepoints), figsize=(2.4 * len(timepoints) + 1.2, 3.2), sharey=True, squeeze=False)
    colours = {"paired": "#d95f02", "unpaired": "#7570b3", "elsewhere": "#bbbbbb"}
    for ax, tp in zip(axes[0], timepoints, strict=True):
        at = wide[wide["timepoint"].astype(str) == tp]
        for gi, group in enumerate(groups):
            g = at[at["group"].astype(str) == group]
            paired = 100 * g["time_in_paired_fraction"].to_numpy(dtype=float)
            unpaired = 100 * g["time_in_unpaired_fraction"].to_numpy(dtype=float)
            if not np.isfinite(paired).any():
                continue
            mp, mu = float(np.nanmean(paired)), float(np.nanmean(unpaired))
            ax.bar(gi, mp, color=colours["paired"], label="paired" if gi == 0 else None)
            ax.bar(gi, mu, bottom=mp, color=colours["unpaired"], label="unpaired" if gi == 0 else None)
            rest = max(0.0, 100 - mp - mu)
            if rest > 0.05:
                ax.bar(gi, rest, bottom=mp + mu, color=colours["elsewhere"], label="elsewhere" if gi == 0 else None)
            jitter = np.linspace(-0.2, 0.2, max(len(paired), 1))
            ax.scatter(gi + jitter, paired, s=9, color="black", zorder=3)
        ax.axhline(50, color="black", lw=0.6, ls=":")
        ax.set_xticks(range(len(groups)), [ctx.group_names.get(g, g) for g in groups], rotation=30, fontsize=7)
        ax.set_title(tp, fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel("time in chamber (% of tracked)")
    axes[0][0].set_ylim(0, 100)
    axes[0][-1].legend(fontsize=7, frameon=False, loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    items = [
        ReportItem(
            title="Place preference: chamber occupancy",
            png_base64=base64.b64encode(buf.getvalue()).decode(),
            caption=(
                "Mean share of the tracked time in the paired and unpaired chambers per group and timepoint; "
                "dots: each session's paired share. Dotted line: no preference."
            ),
        )
    ]
    if "preference_score_s" in wide.columns:
        rows = []
        for (group, tp), g in wide.groupby(["group", "timepoint"], sort=False):
            s = g["preference_score_s"].dropna()
            if s.empty:
                continue
            pct = g["preference_score_percent"].dropna() if "preference_score_percent" in g else pd.Series(dtype=float)
            rows.append(
                (
                    ctx.group_names.get(str(group), str(group)),
                    str(tp),
                    len(s),
                    round(float(s.mean()), 2),
                    round(float(pct.mean()), 2) if len(pct) else None,
                )
            )
        order = {t: i for i, t in enumerate(timepoints)}
        rows.sort(key=lambda r: (r[0], order.get(r[1], 99)))
        if rows:
            items.append(
                ReportItem(
                    title="Place preference: preference score (test - pre-test)",
                    columns=("group", "timepoint", "n", "mean score (s)", "mean score (% of test)"),
                    rows=tuple(rows),
                )
            )
    return items
