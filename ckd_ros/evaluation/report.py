"""Tables (terminal, Markdown, CSV) and the precision / success plots papers print."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .scoring import Score, TrackerScore

# what each plot shows: curve attribute, score attribute, x label, y label, legend location
_PLOTS = {
    "precision": ("precision_curve", "precision", "Location error threshold (pixels)", "Precision", "lower right"),
    "normalised": ("normalised_curve", "normalised_precision", "Normalised location error threshold",
                   "Normalised precision", "lower right"),
    "success": ("success_curve", "success", "Overlap threshold", "Success rate", "lower left"),
}


def _metric_columns(score: TrackerScore) -> list[tuple[str, str]]:
    r = score.rules
    cols = [(r.precision_label, "precision")]
    if r.normalised_label is not None:
        cols.append((r.normalised_label, "normalised_precision"))
    cols.append((r.success_label, "success"))
    return cols


def _pct(v: float | None) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100.0 * v:.1f}"


def ranked(scores: list[TrackerScore]) -> list[TrackerScore]:
    """Trackers best first by success (then precision), as result tables are ordered."""
    return sorted(scores, key=lambda s: (s.overall.success, s.overall.precision), reverse=True)


def summary_table(scores: list[TrackerScore]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (scores in percent, one decimal) of the overall table, best first."""
    if not scores:
        raise ValueError("no tracker scores to tabulate")
    cols = _metric_columns(scores[0])
    header = ["Tracker"] + [c for c, _ in cols] + ["Sequences", "Frames"]
    rows = [[s.tracker] + [_pct(getattr(s.overall, a)) for _, a in cols]
            + [_sequences_cell(s), str(s.overall.frames)] for s in ranked(scores)]
    return header, rows


def _sequences_cell(score: TrackerScore) -> str:
    """Sequences scored, "233/234" when some of the benchmark's were left out."""
    n = score.overall.sequences
    return str(n) if n == score.benchmark_sequences else f"{n}/{score.benchmark_sequences}"


def attribute_table(scores: list[TrackerScore]) -> tuple[list[str], list[list[str]]]:
    """One row per attribute, precision/success per tracker ("PR/SR" in percent)."""
    attrs = sorted({a for s in scores for a in s.per_attribute})
    if not attrs:
        return [], []
    r = scores[0].rules
    order = ranked(scores)
    header = ["Attribute", "Sequences"] + [f"{s.tracker} {r.precision_label}/{r.success_label}" for s in order]
    rows = []
    for a in attrs:
        n = next((s.per_attribute[a].sequences for s in order if a in s.per_attribute), 0)
        cells = []
        for s in order:
            sc = s.per_attribute.get(a)
            cells.append("-" if sc is None else f"{_pct(sc.precision)}/{_pct(sc.success)}")
        rows.append([a, str(n)] + cells)
    return header, rows


def per_sequence_table(score: TrackerScore) -> tuple[list[str], list[list[str]]]:
    cols = _metric_columns(score)
    header = ["Sequence", "Frames"] + [c for c, _ in cols]
    rows = [[name, str(sq.frames)] + [f"{100.0 * getattr(sq, a):.2f}" for _, a in cols]
            for name, sq in score.per_sequence.items()]
    return header, rows


def format_text(header: list[str], rows: list[list[str]]) -> str:
    """Aligned plain-text table for the terminal."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def format_markdown(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def format_csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def plot_curves(scores: list[TrackerScore], kind: str, path: str | Path, title: str | None = None,
                attribute: str | None = None) -> Path:
    """Write a precision / normalised-precision / success plot (PNG): one curve per tracker, its score
    in the legend, best first."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if kind not in _PLOTS:
        raise ValueError(f"unknown plot {kind!r}; use one of {sorted(_PLOTS)}")
    if not scores:
        raise ValueError("no tracker scores to plot")
    curve_attr, score_attr, xlabel, ylabel, loc = _PLOTS[kind]
    rules = scores[0].rules
    thresholds = {"precision": rules.precision_thresholds, "success": rules.success_thresholds,
                  "normalised": rules.normalised_thresholds}[kind]
    if thresholds is None:
        raise ValueError(f"{rules.name} defines no {kind} curve")

    def pick(s: TrackerScore) -> Score | None:
        return s.overall if attribute is None else s.per_attribute.get(attribute)

    entries = [(s.tracker, pick(s)) for s in scores if pick(s) is not None]
    entries.sort(key=lambda e: getattr(e[1], score_attr), reverse=True)
    fig, ax = plt.subplots(figsize=(6.0, 4.6), dpi=120)
    styles = ["-", "--", "-.", ":"]
    for i, (name, sc) in enumerate(entries):
        ax.plot(thresholds, getattr(sc, curve_attr), linestyle=styles[(i // 10) % len(styles)], linewidth=2,
                label=f"{name} [{getattr(sc, score_attr):.3f}]")
    label = {"precision": "Precision", "success": "Success", "normalised": "Normalised precision"}[kind]
    where = rules.name + ("" if attribute is None else f" ({attribute})")
    ax.set_title(title or f"{label} plots of OPE on {where}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(float(thresholds[0]), float(thresholds[-1]))
    ax.set_ylim(0.0, 1.0)
    ax.grid(True, linestyle=":", alpha=0.6)
    ax.legend(loc=loc, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(scores: list[TrackerScore], out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write summary / attribute / per-sequence tables (Markdown and CSV) and the plots to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    bench = scores[0].rules.name
    header, rows = summary_table(scores)
    written["summary_md"] = _write(out / "summary.md", f"# {bench}\n\n" + format_markdown(header, rows))
    written["summary_csv"] = _write(out / "summary.csv", format_csv(header, rows))
    ah, ar = attribute_table(scores)
    if ar:
        written["attributes_md"] = _write(out / "attributes.md", f"# {bench} by attribute\n\n" + format_markdown(ah, ar))
        written["attributes_csv"] = _write(out / "attributes.csv", format_csv(ah, ar))
    for s in scores:
        ph, pr = per_sequence_table(s)
        written[f"sequences_{s.tracker}"] = _write(out / f"per_sequence_{_safe(s.tracker)}.csv", format_csv(ph, pr))
    if plots:
        kinds = ["precision", "success"] + (["normalised"] if scores[0].rules.normalised_label else [])
        for k in kinds:
            written[f"plot_{k}"] = plot_curves(scores, k, out / f"{bench}_{k}.png")
    return written


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
