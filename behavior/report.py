"""The study report: one self-contained HTML file (plots embedded as PNG) plus the CSV/Parquet tables.

``write_outputs`` writes ``measures.csv``, ``battery.csv``, ``stats.csv``, ``quality.csv``,
``trial_counts.csv`` (trials per session and measure by outcome), ``failures.csv``,
``change_from_baseline.csv`` (and Parquet copies of measures and battery) and
``report.html``: group x time tests, per-measure time courses (group mean +/- SEM with each
animal, significance marks), the battery heatmap, pairwise comparisons, data quality, methods and provenance.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from behavior import __version__
from behavior.battery import BatteryConfig, battery_table, completeness
from behavior.stats import HOLM_FAMILY, analyse_measures, is_baseline, timepoint_order

__all__ = ["read_unblind_key", "render_report", "trial_counts_table", "write_outputs"]


def trial_counts_table(quality: pd.DataFrame) -> pd.DataFrame:
    """Trials per session and measure by outcome, from the sessions' ``trial_counts`` quality records.

    Any assay may report such records (``{"measure": ..., "<outcome>": count, ...}``); the outcome
    columns are the records' own keys, in the order they first appear.

    Returns
    -------
    pandas.DataFrame
        ``session_id, assay, measure`` and one integer column per outcome (one row per session and measure).
    """
    rows = []
    if not quality.empty and "trial_counts" in quality:
        for q in quality.to_dict("records"):
            counts = q.get("trial_counts")
            if isinstance(counts, list):
                for c in counts:
                    rows.append({"session_id": q["session_id"], "assay": q["assay"], **c})
    outcomes = list(dict.fromkeys(k for r in rows for k in r if k not in ("session_id", "assay", "measure")))
    out = pd.DataFrame(rows, columns=["session_id", "assay", "measure", *outcomes])
    out[outcomes] = out[outcomes].fillna(0).astype(int)
    return out


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


def _time_course_task(task: tuple[str, str, pd.DataFrame, pd.DataFrame], **kwargs: Any) -> str:
    """:func:`_time_course` of one ``(measure, label, data, stats)``, in this or a worker process."""
    import matplotlib

    matplotlib.use("Agg")
    return _time_course(*task, **kwargs)


def _time_course(
    measure: str,
    label: str,
    data: pd.DataFrame,
    stats: pd.DataFrame,
    groups: list[str],
    timepoints: list[str],
    control: str | None,
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
        if control is None or group == control:
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


def _heatmap(
    battery: pd.DataFrame, config: BatteryConfig, names: dict[str, str], control: str | None
) -> tuple[str | None, str, list[str]]:
    """The battery heatmap, what its z-scores are against, and the measures left uncoloured (no direction)."""
    import matplotlib.pyplot as plt

    cols = [c for c in battery.columns if "." in c]
    if not cols or battery.empty:
        return None, "", []
    base = battery[is_baseline(battery["timepoint"], config.baseline_timepoint)]
    reference = "all animals at baseline"
    if control is not None and (base["group"] == control).any():
        base = base[base["group"] == control]
        reference = f"{names.get(control, control)} animals at baseline"
    if base.empty:
        base, reference = battery, "all sessions"
    z = pd.DataFrame(index=battery.index)
    undirected = []
    for c in cols:
        measure = c.split(".", 1)[1]
        mean, sd = base[c].mean(), base[c].std(ddof=1)
        direction = config.direction(measure)
        if direction is None:  # unknown which way is more pain: not coloured rather than guessed
            undirected.append(measure)
            z[c] = np.nan
            continue
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
    return _png(fig), reference, undirected


def _assay_methods(measures: pd.DataFrame, parameters: dict[str, Any] | None) -> str:
    """Each scored assay's part of the methods (from its spec), with the parameters actually used."""
    from behavior.assays import registered_assays

    present = set(measures["assay"]) if not measures.empty else set()
    overrides = list((parameters or {}).get("overrides") or [])
    parts = []
    for name, spec in registered_assays().items():
        if name not in present or spec.methods is None:
            continue
        try:
            cfg = spec.load_config(spec.applicable_overrides(overrides))
        except ValueError:  # a service report has no study overrides to check: fall back to the file
            cfg = spec.load_config()
        parts.append(spec.methods(cfg))
    return " ".join(parts)


def _assay_sections(
    measures: pd.DataFrame, quality: pd.DataFrame, out_dir: Path | None, names: dict[str, str]
) -> dict[str, list[Any]]:
    """What each scored assay adds to the report (its spec's ``report`` hook), by domain."""
    from behavior.assays import DOMAINS, ReportContext, registered_assays

    present = set(measures["assay"]) if not measures.empty else set()
    context = ReportContext(measures=measures, quality=quality, out_dir=out_dir, group_names=names)
    sections: dict[str, list[Any]] = {d: [] for d in DOMAINS}
    for name, spec in registered_assays().items():
        if name in present and spec.report is not None:
            sections.setdefault(spec.domain, []).extend(spec.report(context))
    return {d: items for d, items in sections.items() if items}


def _sum_text(q: pd.DataFrame, column: str) -> str:
    return str(int(q[column].sum())) if column in q and q[column].notna().any() else "-"


def _percent_text(q: pd.DataFrame, column: str) -> str:
    return f"{100 * q[column].mean():.1f} %" if column in q and q[column].notna().any() else "-"


def _outcome_labels() -> dict[str, str]:
    """Column labels of the trial-outcome table, from the specs that report outcomes."""
    from behavior.assays import registered_assays

    labels: dict[str, str] = {}
    for spec in registered_assays().values():
        labels.update(spec.labels)
    return labels


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
    out_dir: Path | None = None,
    map_fn: Callable[..., Iterable[str]] = map,
) -> str:
    """The report as one HTML string (see the module docstring).

    ``out_dir`` is the scored study's folder (``sessions/<id>/<table>.csv``), for assays whose report
    hook draws from per-session tables. ``map_fn`` draws the per-measure figures (a process pool's
    ``map`` spreads them over cores).
    """
    import matplotlib

    matplotlib.use("Agg")
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    names = unblind or {}
    groups = sorted(measures["group"].unique()) if not measures.empty else []
    control = config.control_in(groups, names)  # the config names the group; blinded data carry its code
    if control is not None:
        groups = [control, *[g for g in groups if g != control]]
    timepoints = timepoint_order(measures["timepoint"], config.baseline_timepoint) if not measures.empty else []
    info = config.measure_info()
    per_animal = measures.groupby(["measure", "animal_id", "group", "timepoint"], as_index=False)["value"].mean()
    lmm_rows = []
    measure_order = [c.split(".", 1)[1] for c in battery.columns if "." in c]
    domain_of = dict(zip(measures["measure"], measures["domain"], strict=False))
    drawn = []
    for m in measure_order:
        label = info[m].label if m in info and info[m].label else m
        data = per_animal[per_animal["measure"] == m]
        if data["value"].notna().any():
            drawn.append((m, label, data, stats[stats["measure"] == m]))
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
    pngs = map_fn(partial(_time_course_task, groups=groups, timepoints=timepoints, control=control, names=names), drawn)
    figures = [{"label": label, "png": png} for (_, label, _, _), png in zip(drawn, pngs, strict=True)]
    heatmap, reference, undirected = _heatmap(battery, config, names, control)
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
                    "frames": _sum_text(q, "frames"),
                    "missing": _percent_text(q, "missing_point_fraction"),
                    "low_conf": _percent_text(q, "low_confidence_fraction"),
                }
            )
    counts = trial_counts_table(quality)
    outcomes = [c for c in counts.columns if c not in ("session_id", "assay", "measure")]
    trial_rows = []
    for (assay, measure), c in counts.groupby(["assay", "measure"], sort=True):
        trial_rows.append(
            {"assay": assay, "measure": measure, "sessions": int(c["session_id"].nunique())}
            | {"counts": [int(c[k].sum()) for k in outcomes]}
        )
    labels = _outcome_labels()
    libs = []
    for lib in ("numpy", "pandas", "scipy", "statsmodels", "scikit-learn", "opencv-python-headless", "onnxruntime"):
        try:
            libs.append(f"{lib} {version(lib)}")
        except PackageNotFoundError:
            continue
    methods = (
        f"Sessions were scored with painbattery {__version__} ({', '.join(libs)}). Poses were read from the "
        "session's pose file or predicted from its video by the session's pose model. "
        + _assay_methods(measures, parameters)
        + " Statistics per measure, with animals identified by group and animal id (ids may repeat across "
        "groups): a linear mixed model value ~ group x timepoint with a random intercept per animal (statsmodels "
        "MixedLM, maximum likelihood) and a likelihood-ratio test of the interaction; at each timepoint Welch "
        "t-tests between groups with Hedges' g and 95 % confidence intervals; the area under each animal's "
        "change-from-baseline curve (trapezoid over all the study's timepoints of the measure, on the days axis; "
        "timepoints in hours, days or weeks; an animal missing a timepoint is left out of the AUC comparison and "
        f"named in its note) compared the same way. {HOLM_FAMILY} Alpha = {config.alpha}. "
        f"Parameters: {parameters or {}}."
    )
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())
    return env.get_template("report.html").render(
        title=title,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        n_sessions=int(measures["session_id"].nunique()) + len(failures),
        n_animals=int(measures[["group", "animal_id"]].drop_duplicates().shape[0]),
        groups=[names.get(g, g) for g in groups],
        timepoints=timepoints,
        blinded=bool(unblind),
        warnings=completeness(measures),
        failures=failures.to_dict("records"),
        lmm=lmm_rows,
        alpha=config.alpha,
        control=names.get(control, control) if control is not None else None,
        control_name=config.control_group,
        undirected=undirected,
        trial_counts=trial_rows,
        trial_outcomes=[labels.get(k, k.replace("_", " ")) for k in outcomes],
        assay_sections=_assay_sections(measures, quality, out_dir, names),
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
    n_jobs: int = 1,
) -> dict[str, Path]:
    """Compute the battery and statistics and write every output file; returns their paths.

    ``n_jobs`` worker processes fit the per-measure models and draw the figures (the outputs do not
    depend on it).
    """
    with _process_map(n_jobs) as map_fn:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        config = config or BatteryConfig.load("default")
        battery = battery_table(measures, config)
        stats = analyse_measures(measures, baseline=config.baseline_timepoint, alpha=config.alpha, map_fn=map_fn)
        paths = {
            "measures": out / "measures.csv",
            "battery": out / "battery.csv",
            "stats": out / "stats.csv",
            "quality": out / "quality.csv",
            "trial_counts": out / "trial_counts.csv",
            "failures": out / "failures.csv",
            "change": out / "change_from_baseline.csv",
            "report": out / "report.html",
        }
        measures.to_csv(paths["measures"], index=False)
        battery.to_csv(paths["battery"], index=False)
        stats.to_csv(paths["stats"], index=False)
        quality.drop(columns=["trial_counts"], errors="ignore").to_csv(paths["quality"], index=False)
        trial_counts_table(quality).to_csv(paths["trial_counts"], index=False)
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
                out_dir=out,
                map_fn=map_fn,
            )
        )
        return paths


@contextmanager
def _process_map(n_jobs: int) -> Iterator[Callable[..., Iterable[Any]]]:
    """``map`` over ``n_jobs`` spawned processes (the built-in ``map`` for one)."""
    if n_jobs <= 1:
        yield map
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawned, not forked: the parent may hold torch / ONNX Runtime threads that a fork would copy mid-state
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield lambda fn, items: list(pool.map(fn, items))
