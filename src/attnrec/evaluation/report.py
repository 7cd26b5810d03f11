"""The benchmark report: statistics over the cells of a benchmark, written as Markdown, self-contained HTML,
JSON and PNG plots, and the Markdown block that ``docs/benchmarks.md`` holds between its markers.

Statistics (also stated in every report):

* **mean ± sd** of each metric over the seeds that finished (sample sd, ``ddof=1``; no sd with one seed).
* **95% CI** of the headline metric: a per-user bootstrap (2,000 resamples of the users, percentile interval,
  fixed generator seed 0) of the mean over users of each user's value averaged over the seeds.
* **paired test against the best model** (best = highest mean headline metric, lowest for rmse/mae/logloss):
  per user, each model's value averaged over its seeds; over the users both models evaluated, the two-sided
  paired t-test (:func:`attnrec.evaluation.stats.paired_test`; the Wilcoxon signed-rank p-value is in
  ``report.json``). Not corrected for multiple comparisons.
* **click prediction** (headline ``auc``, ``gauc`` or ``logloss``, no per-user values): the CI is the percentile
  interval of the metric over 1,000 resamples of each seed's test users (generator seed = the seed), averaged
  over the seeds; the p value is a paired bootstrap (both models on the same resampled users of the same
  impressions; two-sided, add-one smoothed).
"""

from __future__ import annotations

import base64
import io
import math
import platform
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnrec import __version__
from attnrec.errors import ConfigError
from attnrec.evaluation.benchmark import (
    BenchmarkPlan,
    Cell,
    CellOutcome,
    cell_members,
    cpu_name,
    marker_matches,
    read_ctr_test,
    read_marker,
    read_per_user,
)
from attnrec.evaluation.ctr import CTR_METRICS, ctr_replicates, user_multiplicities
from attnrec.io import read_json, write_json

REPORT_DIR = "report"
BOOTSTRAP_SAMPLES = 2000
STATISTICS_NOTE = (
    "mean ± sd over seeds (sample sd); 95% CI of the headline metric: per-user bootstrap (2,000 resamples, "
    "percentile) of the mean of each user's value averaged over the seeds; p vs best: two-sided paired t-test "
    "over users on the seed-averaged per-user headline metric (Wilcoxon in report.json), not corrected for "
    "multiple comparisons"
)
CTR_BOOTSTRAP_SAMPLES = 1000
CTR_STATISTICS_NOTE = (
    "mean ± sd over seeds (sample sd); 95% CI of the headline metric: user bootstrap (1,000 resamples of each "
    "seed's test users, percentile) of the metric averaged over the seeds; p vs best: two-sided paired bootstrap "
    "(both models scored on the same resampled users of each seed's test impressions; p = 2 x the smaller share "
    "of resampled differences on either side of 0, with add-one smoothing), not corrected for multiple comparisons"
)


def statistics_note(metric: str) -> str:
    """The statistics line of a report whose headline metric is ``metric``."""
    return CTR_STATISTICS_NOTE if metric in CTR_METRICS else STATISTICS_NOTE


@dataclass
class ModelRow:
    """One model's aggregate on one dataset."""

    model: str
    registry_name: str
    params: dict[str, Any]
    seeds: list[int]
    """Seeds whose cell finished."""
    values: dict[str, list[float]]
    """Metric -> one value per finished seed."""
    fit_seconds: list[float]
    epochs: list[int]
    status: dict[int, str]
    """Seed -> ``done`` / ``timeout: ...`` / ``failed: ...`` / ``missing``."""
    epoch_seconds: list[float] = field(default_factory=list)
    """Median training seconds of an epoch (history.csv ``seconds``), one per finished seed that trained in
    epochs (closed-form models: none)."""
    best_epochs: list[int] = field(default_factory=list)
    """The epoch whose weights each finished seed kept (early stopping on validation), where it trained in epochs."""
    ci95: tuple[float, float] | None = None
    delta: float | None = None
    p_value: float | None = None
    p_wilcoxon: float | None = None
    paired_users: int | None = None
    per_user: tuple[np.ndarray, np.ndarray] | None = None
    """(users, seed-averaged headline values) for the tests."""
    ctr_tests: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    """Click prediction: seed -> the cell's test impressions (``users``, ``labels``, ``scores``)."""
    ctr_replicates: np.ndarray | None = None
    """Click prediction: the headline metric of each user resample, averaged over the seeds."""
    curves: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    vs_members: dict[str, dict[str, Any]] = field(default_factory=dict)
    """A fusion of other rows (members ``{cell = LABEL}``): member label -> ``delta``, ``p_value_t``,
    ``p_value_wilcoxon``, ``paired_users`` of the fusion against that member."""

    def mean(self, metric: str) -> float | None:
        v = [x for x in self.values.get(metric, []) if x == x]
        return float(np.mean(v)) if v else None

    def sd(self, metric: str) -> float | None:
        v = [x for x in self.values.get(metric, []) if x == x]
        return float(np.std(v, ddof=1)) if len(v) > 1 else None


@dataclass
class DatasetReport:
    name: str
    files: dict[str, str]
    sha256: dict[str, str]
    info: dict[str, Any]
    rows: list[ModelRow]
    best: str | None
    curves_png: bytes | None = None
    time_png: bytes | None = None
    references: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    """Published figures shown under the models: (label, metric -> value)."""


@dataclass
class Report:
    name: str
    description: str
    metric: str
    columns: list[str]
    seeds: list[int]
    datasets: list[DatasetReport]
    command: str
    config_text: str
    config_name: str
    environment: dict[str, Any]
    cell_versions: list[dict[str, Any]]
    cell_hosts: list[dict[str, Any]]
    cell_seconds: float
    cells_total: int
    cells_done: int


# ------------------------------------------------------------------------------------------- aggregation
def build_report(plan: BenchmarkPlan, outcomes: dict[str, CellOutcome] | None = None, *, command: str = "") -> Report:
    """Aggregate the cells of ``plan`` as found on disk (``outcomes`` adds failures of this invocation)."""
    config = plan.config
    outcomes = outcomes or {}
    datasets = []
    versions: list[dict[str, Any]] = []
    hosts: list[dict[str, Any]] = []
    seconds = 0.0
    done = 0
    for ds in plan.datasets:
        rows: list[ModelRow] = []
        info: dict[str, Any] = {}
        for entry in config.models:
            cells = [c for c in plan.cells if c.dataset == ds.name and c.model == entry.key]
            row = ModelRow(entry.key, entry.name, dict(entry.params), [], {}, [], [], {})
            per_user: list[tuple[np.ndarray, np.ndarray]] = []
            for cell in cells:
                state, metrics, marker = _cell_state(cell, outcomes.get(cell.name))
                row.status[cell.seed] = state
                if marker is not None:
                    seconds += float(marker.get("seconds", 0.0))
                    host = marker.get("host")
                    if isinstance(host, dict) and host not in hosts:
                        hosts.append(host)
                if metrics is None:
                    continue
                done += 1
                row.seeds.append(cell.seed)
                test = metrics.get("test", {})
                for metric in {*config.table_columns(), config.metric}:
                    row.values.setdefault(metric, []).append(float(test.get(metric, math.nan)))
                row.fit_seconds.append(float(metrics.get("train_seconds", math.nan)))
                row.epochs.append(int(metrics.get("epochs", 1)))
                if dict(metrics.get("fit") or {}).get("kind") == "epochs":
                    if metrics.get("best_epoch") is not None:
                        row.best_epochs.append(int(metrics["best_epoch"]))
                    epoch_s = [s for _, s in _curve(cell.folder / "history.csv", "seconds")]
                    if epoch_s:
                        row.epoch_seconds.append(float(np.median(epoch_s)))
                info = info or {
                    **dict(metrics.get("dataset", {})),
                    "test_users": metrics.get("users_evaluated", {}).get("test"),
                    "split": metrics.get("split"),
                    "protocol": metrics.get("protocol"),
                }
                cfg = _read_json_dict(cell.folder / "config.json")
                v = cfg.get("versions")
                if isinstance(v, dict):
                    v = {**v, "device": cfg.get("device_used", "cpu")}
                    if v not in versions:
                        versions.append(v)
                pu = read_per_user(cell.folder)
                if pu is not None and config.metric in pu:
                    per_user.append((pu["users"], pu[config.metric]))
                impressions = read_ctr_test(cell.folder) if config.metric in CTR_METRICS else None
                if impressions is not None:
                    row.ctr_tests[cell.seed] = impressions
                curve = _curve(cell.folder / "history.csv", f"valid_{config.metric}")
                if len(curve) > 1:
                    row.curves[cell.seed] = curve
            if per_user and len(per_user) == len(row.seeds):
                row.per_user = _seed_average(per_user)
                row.ci95 = bootstrap_ci(row.per_user[1])
            if row.seeds and len(row.ctr_tests) == len(row.seeds):
                row.ctr_replicates = _ctr_seed_replicates(row.ctr_tests, config.metric)
                row.ci95 = _percentile_interval(row.ctr_replicates)
            rows.append(row)
        best = _best(rows, config.metric, minimise=config.minimise)
        _paired_tests(rows, best, config.metric, str(info.get("protocol") or "full"))
        members = {e.key: [label for _, label in cell_members(e.params)] for e in config.models}
        _member_tests(rows, {k: v for k, v in members.items() if v}, config.metric, str(info.get("protocol") or "full"))
        report_ds = DatasetReport(ds.name, ds.files, ds.sha256, info, rows, best)
        report_ds.references = [(r.label, dict(r.values)) for r in config.references if r.dataset == ds.name]
        report_ds.curves_png = curves_plot(report_ds, config.metric)
        report_ds.time_png = quality_time_plot(report_ds, config.metric)
        datasets.append(report_ds)
    source = plan.source
    return Report(
        name=config.name,
        description=config.description,
        metric=config.metric,
        columns=config.table_columns(),
        seeds=list(config.seeds),
        datasets=datasets,
        command=command,
        config_text=source.read_text(encoding="utf-8") if source is not None else "",
        config_name=source.name if source is not None else "",
        environment=environment(),
        cell_versions=versions,
        cell_hosts=hosts,
        cell_seconds=seconds,
        cells_total=len(plan.cells),
        cells_done=done,
    )


def _read_json_dict(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except Exception:
        return {}
    return data if isinstance(data, dict) else {}


def _cell_state(cell: Cell, outcome: CellOutcome | None) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    marker = read_marker(cell)
    if marker_matches(cell, marker):
        marker = read_marker(cell) or {}
        if marker.get("status") == "done" and (cell.folder / "metrics.json").is_file():
            return "done", _read_json_dict(cell.folder / "metrics.json"), marker
        if marker.get("status") == "timeout":
            return f"timeout after {float(marker.get('seconds', 0)):.0f} s", None, marker
    if outcome is not None and outcome.status == "failed":
        return f"failed: {outcome.message}", None, None
    return "missing", None, None


def _seed_average(per_seed: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Users evaluated in every seed and their value averaged over the seeds."""
    users = per_seed[0][0]
    for u, _ in per_seed[1:]:
        users = np.intersect1d(users, u)
    total = np.zeros(len(users))
    for u, v in per_seed:
        idx = np.searchsorted(u, users)
        total += v[idx]
    return users, total / len(per_seed)


def bootstrap_ci(values: np.ndarray, level: float = 0.95, samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement; generator seed 0);
    ``(nan, nan)`` for fewer than two values."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(0)
    means = np.empty(samples)
    chunk = max(1, 2_000_000 // len(x))
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        means[start:stop] = x[rng.integers(0, len(x), size=(stop - start, len(x)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha)))


def _best(rows: list[ModelRow], metric: str, *, minimise: bool) -> str | None:
    scored = [(r.mean(metric), r.model) for r in rows if r.mean(metric) is not None]
    if not scored:
        return None
    pick = min if minimise else max
    return pick(scored, key=lambda t: t[0])[1]  # type: ignore[arg-type,return-value]


def _ctr_seed_replicates(tests: dict[int, dict[str, np.ndarray]], metric: str) -> np.ndarray:
    """``metric`` on each of :data:`CTR_BOOTSTRAP_SAMPLES` user resamples, averaged over the seeds; the resamples
    of a seed are drawn with that seed, so two models evaluated on the same impressions share them."""
    per_seed = []
    for seed, t in sorted(tests.items()):
        mult = user_multiplicities(t["users"], CTR_BOOTSTRAP_SAMPLES, seed)
        reps = ctr_replicates(t["labels"], t["scores"], t["users"], mult, probabilistic=bool(t["probabilistic"][0]))
        per_seed.append(reps.get(metric, np.full(CTR_BOOTSTRAP_SAMPLES, np.nan)))
    return np.mean(per_seed, axis=0)


def _percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return None
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(finite, alpha)), float(np.quantile(finite, 1.0 - alpha))


def _paired_ctr(row: ModelRow, ref: ModelRow) -> dict[str, Any] | None:
    """Paired user bootstrap of ``row`` against ``ref`` (click prediction): None unless both have every seed's
    impressions and those are the same impressions (users and labels) seed by seed."""
    if row.ctr_replicates is None or ref.ctr_replicates is None or set(row.ctr_tests) != set(ref.ctr_tests):
        return None
    for seed, t in row.ctr_tests.items():
        u = ref.ctr_tests[seed]
        if not (np.array_equal(t["users"], u["users"]) and np.array_equal(t["labels"], u["labels"])):
            return None
    diff = row.ctr_replicates - ref.ctr_replicates
    diff = diff[np.isfinite(diff)]
    if len(diff) == 0:
        return None
    n = len(diff)
    below, above = (int(np.sum(diff <= 0)) + 1) / (n + 1), (int(np.sum(diff >= 0)) + 1) / (n + 1)
    users = sum(len(np.unique(t["users"])) for t in row.ctr_tests.values())
    return {"p_value_t": min(1.0, 2.0 * min(below, above)), "p_value_wilcoxon": None, "n_users": users}


def _paired(row: ModelRow, ref: ModelRow, metric: str, protocol: str) -> dict[str, Any] | None:
    """Paired tests of ``row`` against ``ref`` over their common users (seed-averaged per-user values; click
    prediction: :func:`_paired_ctr`), or None without per-user values or with fewer than two common users."""
    from attnrec.evaluation.protocol import EvaluationResult
    from attnrec.evaluation.stats import paired_test

    if row.ctr_replicates is not None or ref.ctr_replicates is not None:
        return _paired_ctr(row, ref)
    if row.per_user is None or ref.per_user is None:
        return None

    def result(pu: tuple[np.ndarray, np.ndarray]) -> EvaluationResult:
        return EvaluationResult(protocol, (), pu[0], {metric: pu[1]}, {})

    try:
        return paired_test(result(row.per_user), result(ref.per_user), metric)
    except ConfigError:  # fewer than two common users
        return None


def _paired_tests(rows: list[ModelRow], best: str | None, metric: str, protocol: str) -> None:
    ref = next((r for r in rows if r.model == best), None)
    if ref is None:
        return
    for row in rows:
        m, b = row.mean(metric), ref.mean(metric)
        if m is not None and b is not None:
            row.delta = m - b
        test = None if row is ref else _paired(row, ref, metric, protocol)
        if test is not None:
            row.p_value, row.p_wilcoxon = test["p_value_t"], test["p_value_wilcoxon"]
            row.paired_users = test["n_users"]


def _member_tests(rows: list[ModelRow], members: dict[str, list[str]], metric: str, protocol: str) -> None:
    """A fusion row against each of its member rows (``members``: fusion label -> member labels)."""
    by_label = {r.model: r for r in rows}
    for label, refs in members.items():
        row = by_label[label]
        for ref_label in refs:
            ref = by_label[ref_label]
            m, b = row.mean(metric), ref.mean(metric)
            test = _paired(row, ref, metric, protocol)
            row.vs_members[ref_label] = {
                "delta": None if m is None or b is None else m - b,
                "p_value_t": None if test is None else test["p_value_t"],
                "p_value_wilcoxon": None if test is None else test["p_value_wilcoxon"],
                "paired_users": None if test is None else test["n_users"],
            }


def _curve(path: Path, column: str) -> list[tuple[int, float]]:
    import csv

    if not path.is_file():
        return []
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=1):
            value = row.get(column)
            if value not in (None, ""):
                out.append((int(float(row.get("epoch") or i)), float(value)))
    return out


def environment() -> dict[str, Any]:
    """Versions and machine of the process writing the report."""
    import numpy
    import scipy
    import torch

    env: dict[str, Any] = {
        "attnrec": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "cpu": cpu_name(),
        "platform": platform.platform(),
    }
    try:
        import implicit

        env["implicit"] = getattr(implicit, "__version__", "?")
    except ImportError:  # pragma: no cover - a core dependency
        pass
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


# ------------------------------------------------------------------------------------------------- plots
def _figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def curves_plot(ds: DatasetReport, metric: str) -> bytes | None:
    """Validation ``metric`` per epoch, one colour per model, one line per seed (``None``: no model logs it)."""
    rows = [r for r in ds.rows if r.curves]
    if not rows:
        return None
    fig, ax = _figure()
    for i, row in enumerate(rows):
        colour = f"C{i % 10}"
        for j, (_, curve) in enumerate(sorted(row.curves.items())):
            xs, ys = zip(*curve, strict=True)
            style = ("-", "--", ":", "-.")[j % 4]
            ax.plot(xs, ys, style, color=colour, alpha=0.85, linewidth=1.4, label=row.model if j == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"{ds.name}: training curves (one line style per seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def quality_time_plot(ds: DatasetReport, metric: str) -> bytes | None:
    """Mean test ``metric`` (± sd over seeds) against mean fit seconds, one point per model."""
    points = [
        (float(np.nanmean(r.fit_seconds)), r.mean(metric), r.sd(metric) or 0.0, r.model)
        for r in ds.rows
        if r.fit_seconds and r.mean(metric) is not None
    ]
    if not points:
        return None
    fig, ax = _figure()
    for i, (x, y, sd, name) in enumerate(points):
        ax.errorbar([max(x, 1e-3)], [y], yerr=[sd], fmt="o", color=f"C{i % 10}", capsize=3)
        ax.annotate(name, (max(x, 1e-3), y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    xs = [max(p[0], 1e-3) for p in points]
    if max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("fit seconds (mean over seeds)")
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"{ds.name}: quality vs time")
    ax.grid(alpha=0.3)
    return _png(fig)


# ------------------------------------------------------------------------------------------------ render
def _f(x: float | None, digits: int = 4) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    return "< 0.0001" if x < 1e-4 else f"{x:.4f}"


def _seconds(x: float) -> str:
    if x < 90:
        return f"{x:.1f} s"
    if x < 5400:
        return f"{x / 60:.1f} min"
    return f"{x / 3600:.2f} h"


def table_rows(report: Report, ds: DatasetReport) -> tuple[list[str], list[list[str]]]:
    """Header and cells of a dataset's table (text; the best model's headline value marked with ``**``)."""
    metric = report.metric
    header = ["model", *report.columns]
    if metric not in report.columns:
        header.append(metric)
    tail = [f"95% CI {metric}", "Δ vs best", "p vs best", "fit s", "s / epoch", "best epoch", "seeds"]
    header += tail
    out = []
    for row in ds.rows:
        cells = [row.model]
        for m in header[1 : len(header) - len(tail)]:
            mean, sd = row.mean(m), row.sd(m)
            text = _f(mean) + ("" if sd is None else f" ± {sd:.4f}")
            if m == metric and row.model == ds.best and mean is not None:
                text = f"**{text}**"
            cells.append(text)
        ci = "-" if row.ci95 is None or row.ci95[0] != row.ci95[0] else f"[{row.ci95[0]:.4f}, {row.ci95[1]:.4f}]"
        cells.append(ci)
        if row.model == ds.best:
            cells += ["best", "-"]
        else:
            cells += ["-" if row.delta is None else f"{row.delta:+.4f}", _p(row.p_value)]
        fit = [s for s in row.fit_seconds if s == s]
        cells.append(_f(float(np.mean(fit)), 1) if fit else "-")
        cells.append(_f(float(np.mean(row.epoch_seconds)), 1) if row.epoch_seconds else "-")
        cells.append(", ".join(str(e) for e in row.best_epochs) if row.best_epochs else "-")
        failed = [f"seed {s}: {st}" for s, st in row.status.items() if st != "done"]
        cells.append(f"{len(row.seeds)}/{len(row.status)}" + (f" ({'; '.join(failed)})" if failed else ""))
        out.append(cells)
    for label, values in ds.references:
        shown = [_f(values.get(m)) for m in header[1 : len(header) - len(tail)]]
        out.append([f"published: {label}", *shown, *["-"] * (len(tail) - 1), "published"])
    return header, out


def member_lines(report: Report, ds: DatasetReport) -> list[str]:
    """One line per fusion row: its difference from each member and the paired t-test's p value."""
    out = []
    for row in ds.rows:
        if not row.vs_members:
            continue
        parts = []
        for label, t in row.vs_members.items():
            delta = "-" if t["delta"] is None else f"{t['delta']:+.4f}"
            parts.append(f"vs {label} {delta} (p {_p(t['p_value_t'])})")
        out.append(f"{row.model} against its members ({report.metric}, paired over users): {'; '.join(parts)}.")
    return out


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _dataset_heading(ds: DatasetReport) -> str:
    info = ds.info
    if not info:
        return ds.name
    parts = [f"{int(info.get('users', 0)):,} users", f"{int(info.get('items', 0)):,} items"]
    parts.append(f"{int(info.get('interactions', 0)):,} events")
    if info.get("test_users") is not None:
        parts.append(f"{int(info['test_users']):,} test users")
    protocol = info.get("protocol")
    how = "pointwise click prediction" if protocol == "pointwise" else f"{protocol} ranking"
    return f"{ds.name} ({', '.join(parts)}; {info.get('split')}, {how})"


def _versions_line(report: Report) -> str:
    vs = report.cell_versions or [report.environment]
    texts = []
    for v in vs:
        keys = ("attnrec", "torch", "python", "numpy")
        texts.append(
            ", ".join(f"{k} {v[k]}" for k in keys if k in v) + (f", device {v['device']}" if "device" in v else "")
        )
    hosts = report.cell_hosts or [{"cpu": report.environment["cpu"]}]
    # one entry per CPU and core count (hosts that differ only in their kernel or platform read the same)
    cpus = [f"{h.get('cpu', '?')}" + (f" ({h['cores']} cores)" if h.get("cores") else "") for h in hosts]
    cpu = "; ".join(dict.fromkeys(cpus))
    mixed = " (cells computed under several versions)" if len(vs) > 1 else ""
    return f"{' | '.join(texts)}{mixed}; CPU: {cpu}"


def docs_block(report: Report, *, command: str | None = None) -> str:
    """The Markdown that ``--update-docs`` puts between the section's markers (deterministic: the same cells
    give the same text, so regenerating an unchanged benchmark leaves the file unchanged). ``command``: the
    command shown (default: the report's)."""
    lines = [
        "<!-- generated by `attnrec benchmark`; do not edit by hand: rerun the command below -->",
        "",
        f"Command: `{command or report.command}`",
        "",
        f"Versions: {_versions_line(report)}. Cells: {report.cells_done}/{report.cells_total} finished, "
        f"{_seconds(report.cell_seconds)} of cell time (fit + evaluation, summed). Seeds: "
        f"{', '.join(str(s) for s in report.seeds)}. Statistics: {statistics_note(report.metric)}.",
    ]
    for ds in report.datasets:
        header, rows = table_rows(report, ds)
        sha = ", ".join(f"`{Path(ds.files[r]).name}` {ds.sha256[r][:12]}…" for r in ds.files)
        lines += ["", f"**{_dataset_heading(ds)}**; sha256 {sha}", "", _md_table(header, rows)]
        lines += [line for text in member_lines(report, ds) for line in ("", text)]
    return "\n".join(lines) + "\n"


def render_markdown(report: Report) -> str:
    lines = [f"# Benchmark report: {report.name}", ""]
    if report.description:
        lines += [report.description, ""]
    lines += [
        f"Command: `{report.command}`",
        "",
        f"Cells: {report.cells_done}/{report.cells_total} finished; {_seconds(report.cell_seconds)} of cell time "
        "(fit + evaluation, summed over cells).",
        "",
        f"Headline metric: test {report.metric}. Statistics: {statistics_note(report.metric)}.",
    ]
    for ds in report.datasets:
        header, rows = table_rows(report, ds)
        lines += ["", f"## {_dataset_heading(ds)}", "", _md_table(header, rows), ""]
        lines += [line for text in member_lines(report, ds) for line in (text, "")]
        if ds.curves_png:
            lines.append(f"![training curves]({_png_name('curves', ds.name)})")
        else:
            lines.append("No model logged a validation metric per epoch (closed-form models have no curve).")
        if ds.time_png:
            lines += ["", f"![quality vs time]({_png_name('quality-time', ds.name)})"]
    lines += ["", "## Reproducibility", "", f"* Command: `{report.command}`"]
    for ds in report.datasets:
        for role, path in ds.files.items():
            lines.append(f"* {ds.name} {role}: `{path}` sha256 `{ds.sha256[role]}`")
    lines.append(f"* Cells computed with: {_versions_line(report)}")
    env = report.environment
    lines.append("* Report written with: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    if report.config_text:
        lines += ["", f"Config file `{report.config_name}` (copied beside this report):", "", "```toml"]
        lines += [report.config_text.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _png_name(kind: str, dataset: str) -> str:
    return f"{kind}-{dataset}.png"


def render_html(report: Report) -> str:
    """A self-contained page (inline CSS, plots as data URIs) from ``templates/report.html.j2``."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )
    datasets = []
    for ds in report.datasets:
        header, rows = table_rows(report, ds)
        datasets.append(
            {
                "name": ds.name,
                "heading": _dataset_heading(ds),
                "header": header,
                "rows": [[c.replace("**", "") for c in r] for r in rows],
                "best_rows": [r[0] == ds.best for r in rows],
                "published_rows": [i >= len(ds.rows) for i in range(len(rows))],
                "curves": _data_uri(ds.curves_png),
                "time": _data_uri(ds.time_png),
                "files": [(role, path, ds.sha256[role]) for role, path in ds.files.items()],
                "member_lines": member_lines(report, ds),
            }
        )
    return env.get_template("report.html.j2").render(
        report=report,
        datasets=datasets,
        statistics=statistics_note(report.metric),
        versions=_versions_line(report),
        cell_time=_seconds(report.cell_seconds),
    )


def _data_uri(png: bytes | None) -> str | None:
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def report_json(report: Report) -> dict[str, Any]:
    """The machine-readable report (``report.json``)."""

    def num(x: float | None) -> float | None:
        return None if x is None or x != x else float(x)

    return {
        "name": report.name,
        "metric": report.metric,
        "columns": report.columns,
        "seeds": report.seeds,
        "command": report.command,
        "cells": {"total": report.cells_total, "done": report.cells_done, "seconds": round(report.cell_seconds, 3)},
        "environment": report.environment,
        "cell_versions": report.cell_versions,
        "cell_hosts": report.cell_hosts,
        "statistics": statistics_note(report.metric),
        "datasets": {
            ds.name: {
                "files": {role: {"path": p, "sha256": ds.sha256[role]} for role, p in ds.files.items()},
                "info": ds.info,
                "best": ds.best,
                "references": [{"label": label, "values": values} for label, values in ds.references],
                "models": {
                    r.model: {
                        "model": r.registry_name,
                        "params": r.params,
                        "seeds": r.seeds,
                        "status": {str(s): st for s, st in r.status.items()},
                        "mean": {m: num(r.mean(m)) for m in r.values},
                        "sd": {m: num(r.sd(m)) for m in r.values},
                        "values": {m: [num(x) for x in v] for m, v in r.values.items()},
                        "ci95": None if r.ci95 is None else [num(r.ci95[0]), num(r.ci95[1])],
                        "delta_vs_best": num(r.delta),
                        "p_value_t": num(r.p_value),
                        "p_value_wilcoxon": num(r.p_wilcoxon),
                        "paired_users": r.paired_users,
                        "vs_members": {
                            label: {k: v if k == "paired_users" else num(v) for k, v in t.items()}
                            for label, t in r.vs_members.items()
                        },
                        "fit_seconds": [num(x) for x in r.fit_seconds],
                        "epochs": r.epochs,
                        "epoch_seconds": [num(x) for x in r.epoch_seconds],
                        "best_epochs": r.best_epochs,
                    }
                    for r in ds.rows
                },
            }
            for ds in report.datasets
        },
    }


def write_report(report: Report, out: Path, *, source: Path | None = None) -> Path:
    """Write ``out/report/``: report.md, report.html, report.json, the PNG plots and a copy of the config file.
    Returns the report folder."""
    folder = out / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for ds in report.datasets:
        for kind, png in (("curves", ds.curves_png), ("quality-time", ds.time_png)):
            path = folder / _png_name(kind, ds.name)
            if png is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(png)
    (folder / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (folder / "report.html").write_text(render_html(report), encoding="utf-8")
    write_json(folder / "report.json", report_json(report))
    if source is not None:
        shutil.copyfile(source, folder / source.name)
    return folder


# ------------------------------------------------------------------------------------------ docs section
_SECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def update_docs_section(path: Path, section: str, block: str) -> bool:
    """Replace what lies between ``<!-- benchmark:SECTION -->`` and ``<!-- /benchmark:SECTION -->`` in the
    Markdown file ``path`` with ``block`` (the markers stay; everything else is byte for byte unchanged).
    Returns whether the file changed."""
    if not _SECTION.match(section):
        raise ConfigError(f"--section must be letters, digits, '.', '_' or '-'; got {section!r}")
    if not path.is_file():
        raise ConfigError(f"--update-docs {path}: file not found")
    text = path.read_text(encoding="utf-8")
    start, end = f"<!-- benchmark:{section} -->", f"<!-- /benchmark:{section} -->"
    i, j = text.count(start), text.count(end)
    if i != 1 or j != 1:
        raise ConfigError(
            f"--update-docs {path}: section {section!r} needs exactly one {start!r} and one {end!r} line; "
            f"found {i} and {j}"
        )
    a = text.index(start) + len(start)
    b = text.index(end)
    if b < a:
        raise ConfigError(f"--update-docs {path}: {end!r} comes before {start!r}")
    new = text[:a] + "\n" + block + text[b:]
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True
