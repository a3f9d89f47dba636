"""The study report: one self-contained HTML file (plots embedded as PNG) plus the CSV/Parquet tables.

``write_outputs`` writes ``measures.csv``, ``battery.csv``, ``stats.csv``, ``quality.csv``,
``failures.csv``, ``change_from_baseline.csv`` (and Parquet copies of measures and battery) and
``report.html``: group x time tests, per-measure time courses (group mean +/- SEM with each
animal, significance marks), the battery heatmap, pairwise comparisons, data quality, methods and provenance.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from behavior import __version__
from behavior.battery import BatteryConfig, battery_table, completeness
from behavior.stats import analyse_measures, timepoint_order

__all__ = ["read_unblind_key", "render_report", "write_outputs"]

_PALETTE = ["#4d4d4d", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def read_unblind_key(path: str | Path) -> dict[str, str]:
    """Read a blinding key CSV (``code,group``) into a code -> group mapping.

    Raises
    ------
    ValueError
        If the columns are missing or a code appears twice.
    """
    df = pd.read_csv(path, dtype=str)
    if not {"code", "group"} <= set(df.columns):
        raise ValueError(f"{path}: expected columns code,group, got {','.join(df.columns)}")
    if df["code"].duplicated().any():
        raise ValueError(f"{path}: duplicate codes {sorted(df.loc[df['code'].duplicated(), 'code'])}")
    return dict(zip(df["code"], df["group"], strict=True))


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _stars(p: float) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _time_course(
    measure: str,
    label: str,
    data: pd.DataFrame,
    stats: pd.DataFrame,
    groups: list[str],
    timepoints: list[str],
    control: str,
    names: dict[str, str],
) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    x_of = {t: i for i, t in enumerate(timepoints)}
    for gi, group in enumerate(groups):
        colour = _PALETTE[gi % len(_PALETTE)]
        g = data[data["group"] == group]
        for _, animal in g.groupby("animal_id"):
            animal = animal.assign(x=animal["timepoint"].map(x_of)).sort_values("x")
            ax.plot(animal["x"], animal["value"], color=colour, alpha=0.25, lw=0.8)
        summary = g.groupby("timepoint")["value"].agg(["mean", "sem"]).reindex(timepoints)
        ax.errorbar(
            range(len(timepoints)),
            summary["mean"],
            yerr=summary["sem"],
            color=colour,
            lw=2,
            capsize=3,
            marker="o",
            label=names.get(group, group),
        )
    top = np.nanmax(data["value"].to_numpy()) if data["value"].notna().any() else 1.0
    span = (top - np.nanmin(data["value"].to_numpy())) or 1.0
    pair = stats[(stats["measure"] == measure) & (stats["analysis"] == "pairwise")]
    for gi, group in enumerate(groups):
        if group == control:
            continue
        rows = pair[
            ((pair["group_a"] == group) & (pair["group_b"] == control))
            | ((pair["group_b"] == group) & (pair["group_a"] == control))
        ]
        for _, r in rows.iterrows():
            mark = _stars(r["p_holm"]) if pd.notna(r["p_holm"]) else ""
            if mark and r["timepoint"] in x_of:
                ax.text(
                    x_of[r["timepoint"]],
                    top + span * (0.06 + 0.08 * gi),
                    mark,
                    ha="center",
                    color=_PALETTE[gi % len(_PALETTE)],
                    fontsize=11,
                )
    ax.set_xticks(range(len(timepoints)), timepoints)
    ax.set_ylabel(label, fontsize=8)
    ax.set_title(measure, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _heatmap(battery: pd.DataFrame, config: BatteryConfig, names: dict[str, str]) -> tuple[str | None, str]:
    import matplotlib.pyplot as plt

    cols = [c for c in battery.columns if "." in c]
    if not cols or battery.empty:
        return None, ""
    info = config.measure_info()
    base = battery[battery["timepoint"] == config.baseline_timepoint]
    reference = "all animals at baseline"
    if (base["group"] == config.control_group).any():
        base, reference = base[base["group"] == config.control_group], f"{config.control_group} animals at baseline"
    if base.empty:
        base, reference = battery, "all sessions"
    z = pd.DataFrame(index=battery.index)
    for c in cols:
        measure = c.split(".", 1)[1]
        mean, sd = base[c].mean(), base[c].std(ddof=1)
        direction = info[measure][1].direction if measure in info else 1
        z[c] = direction * (battery[c] - mean) / (sd if sd and np.isfinite(sd) and sd > 0 else np.nan)
    labels = [
        f"{names.get(g, g)} {a} {t}"
        for g, a, t in zip(battery["group"], battery["animal_id"], battery["timepoint"], strict=True)
    ]
    fig, ax = plt.subplots(figsize=(min(1.1 * len(cols) + 3, 14), 0.22 * len(labels) + 1.5))
    im = ax.imshow(z.to_numpy(dtype=float), aspect="auto", cmap="RdBu_r", vmin=-3, vmax=3, interpolation="nearest")
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right", fontsize=7)
    fig.colorbar(im, ax=ax, label="z (positive = more pain-like)", shrink=0.6)
    return _png(fig), reference


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{v:.{digits}g}" if isinstance(v, (float, np.floating)) else str(v)


def render_report(
    measures: pd.DataFrame,
    battery: pd.DataFrame,
    stats: pd.DataFrame,
    quality: pd.DataFrame,
    failures: pd.DataFrame,
    config: BatteryConfig,
    *,
    title: str = "painbattery report",
    unblind: dict[str, str] | None = None,
    provenance: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
) -> str:
    """The report as one HTML string (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    names = unblind or {}
    groups = sorted(measures["group"].unique()) if not measures.empty else []
    if config.control_group in groups:
        groups = [config.control_group, *[g for g in groups if g != config.control_group]]
    timepoints = timepoint_order(measures["timepoint"], config.baseline_timepoint) if not measures.empty else []
    info = config.measure_info()
    per_animal = measures.groupby(["measure", "animal_id", "group", "timepoint"], as_index=False)["value"].mean()
    figures, lmm_rows = [], []
    measure_order = [c.split(".", 1)[1] for c in battery.columns if "." in c]
    domain_of = dict(zip(measures["measure"], measures["domain"], strict=False))
    for m in measure_order:
        label = info[m][1].label if m in info and info[m][1].label else m
        data = per_animal[per_animal["measure"] == m]
        if data["value"].notna().any():
            figures.append(
                {
                    "label": label,
                    "png": _time_course(m, label, data, stats, groups, timepoints, config.control_group, names),
                }
            )
        row = stats[(stats["measure"] == m) & (stats["analysis"] == "lmm_group_x_time")]
        if not row.empty:
            r = row.iloc[0]
            lmm_rows.append(
                {
                    "label": label,
                    "domain": domain_of.get(m, ""),
                    "statistic": _fmt(r["statistic"]),
                    "df": _fmt(r["df"]),
                    "p": _fmt(r["p"]),
                    "significant": bool(r["significant"]),
                    "note": r["note"] if isinstance(r["note"], str) else "",
                }
            )
    heatmap, reference = _heatmap(battery, config, names)
    pairwise = []
    for _, r in stats[stats["analysis"].isin(["pairwise", "auc_pairwise"])].iterrows():
        ga, gb = names.get(r["group_a"], r["group_a"]), names.get(r["group_b"], r["group_b"])
        pairwise.append(
            {
                "measure": r["measure"],
                "timepoint": r["timepoint"] if isinstance(r["timepoint"], str) else "AUC",
                "groups": f"{ga} vs {gb}",
                "n": f"{_fmt(r['n_a'])}/{_fmt(r['n_b'])}",
                "means": f"{_fmt(r['mean_a'])} / {_fmt(r['mean_b'])}",
                "g": f"{_fmt(r['hedges_g'], 2)} [{_fmt(r['g_ci_low'], 2)}, {_fmt(r['g_ci_high'], 2)}]",
                "p": _fmt(r["p"]),
                "p_holm": _fmt(r["p_holm"]),
                "significant": bool(r["significant"]),
            }
        )
    quality_rows = []
    if not quality.empty:
        for assay, q in quality.groupby("assay"):
            quality_rows.append(
                {
                    "assay": assay,
                    "sessions": len(q),
                    "frames": int(q["frames"].sum()),
                    "missing": f"{100 * q['missing_point_fraction'].mean():.1f} %",
                    "low_conf": f"{100 * q['low_confidence_fraction'].mean():.1f} %",
                    "trials": int(q["trials"].sum()) if "trials" in q and q["trials"].notna().any() else "-",
                    "censored": int(q["censored_trials"].sum())
                    if "censored_trials" in q and q["censored_trials"].notna().any()
                    else "-",
                }
            )
    libs = []
    for lib in ("numpy", "pandas", "scipy", "statsmodels", "scikit-learn", "opencv-python-headless", "onnxruntime"):
        try:
            libs.append(f"{lib} {version(lib)}")
        except PackageNotFoundError:
            continue
    methods = (
        f"Sessions were scored with painbattery {__version__} ({', '.join(libs)}). Poses were read from the "
        "session's pose file or predicted from its video by the session's pose model. Evoked measures: withdrawal "
        "latency after each stimulus onset from the stimulated paw's keypoint (threshold: the larger of a fixed "
        "distance and six robust SDs of the resting jitter, held for two frames; trials without withdrawal are "
        "censored at the cut-off and counted at it); von Frey 50 % thresholds by the up-down method (Chaplan 1994, "
        "Dixon's k table). Statistics per measure: a linear mixed model value ~ group x timepoint with a random "
        "intercept per animal (statsmodels MixedLM, maximum likelihood) and a likelihood-ratio test of the "
        "interaction; at each timepoint Welch t-tests between groups with Holm correction and Hedges' g with 95 % "
        "confidence intervals; the area under each animal's change-from-baseline curve compared the same way. "
        f"Alpha = {config.alpha}. Parameters: {parameters or {}}."
    )
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())
    return env.get_template("report.html").render(
        title=title,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        n_sessions=int(measures["session_id"].nunique()) + len(failures),
        n_animals=int(measures["animal_id"].nunique()),
        groups=[names.get(g, g) for g in groups],
        timepoints=timepoints,
        blinded=bool(unblind),
        warnings=completeness(measures),
        failures=failures.to_dict("records"),
        lmm=lmm_rows,
        alpha=config.alpha,
        control=names.get(config.control_group, config.control_group),
        figures=figures,
        heatmap=heatmap,
        heatmap_reference=reference,
        pairwise=pairwise,
        quality=quality_rows,
        methods=methods,
        provenance=provenance or {},
    )


def change_from_baseline_table(measures: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Every measure of every animal at every timepoint with its change from that animal's baseline."""
    from behavior.stats import change_from_baseline

    if measures.empty:
        return pd.DataFrame(columns=["measure", "animal_id", "group", "timepoint", "value", "change"])
    per_animal = measures.groupby(["measure", "animal_id", "group", "timepoint"], as_index=False)["value"].mean()
    frames = [change_from_baseline(g, baseline).assign(measure=m) for m, g in per_animal.groupby("measure")]
    out = pd.concat(frames, ignore_index=True) if frames else per_animal.assign(change=np.nan)
    return out[["measure", "animal_id", "group", "timepoint", "value", "change"]]


def write_outputs(
    out_dir: str | Path,
    measures: pd.DataFrame,
    quality: pd.DataFrame,
    failures: pd.DataFrame,
    *,
    config: BatteryConfig | None = None,
    unblind: dict[str, str] | None = None,
    provenance: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    title: str = "painbattery report",
) -> dict[str, Path]:
    """Compute the battery and statistics and write every output file; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = config or BatteryConfig.load("default")
    battery = battery_table(measures, config)
    stats = analyse_measures(measures, baseline=config.baseline_timepoint, alpha=config.alpha)
    paths = {
        "measures": out / "measures.csv",
        "battery": out / "battery.csv",
        "stats": out / "stats.csv",
        "quality": out / "quality.csv",
        "failures": out / "failures.csv",
        "change": out / "change_from_baseline.csv",
        "report": out / "report.html",
    }
    measures.to_csv(paths["measures"], index=False)
    battery.to_csv(paths["battery"], index=False)
    stats.to_csv(paths["stats"], index=False)
    quality.to_csv(paths["quality"], index=False)
    failures.to_csv(paths["failures"], index=False)
    change_from_baseline_table(measures, config.baseline_timepoint).to_csv(paths["change"], index=False)
    measures.to_parquet(out / "measures.parquet", index=False)
    battery.to_parquet(out / "battery.parquet", index=False)
    paths["report"].write_text(
        render_report(
            measures,
            battery,
            stats,
            quality,
            failures,
            config,
            title=title,
            unblind=unblind,
            provenance=provenance,
            parameters=parameters,
        )
    )
    return paths
