"""The report's figures, drawn from the raw samples the benchmarks save (see benchmarks/summary.py).

matplotlib is imported here only, with the Agg backend: `make bench` needs no display, and nothing else in
the benchmarks pays for the import.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.chain import percentile


def _pyplot() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    return plt, ticker


def push_to_verdict(data: Path, out: Path) -> Path | None:
    """Histogram and CDF of push → stored verdict, median and p95 marked; push → event on the CDF too."""
    source = data / "chain.json"
    if not source.exists():
        return None
    samples = json.loads(source.read_text())
    verdicts, events = samples["verdict_ms"], samples["event_ms"]
    plt, ticker = _pyplot()
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4))
    median, p95 = statistics.median(verdicts), percentile(verdicts, 0.95)
    # A stray slow push (a GC pause, a neighbour's burst) would squash the bars: it is counted, not drawn.
    limit = 3 * p95
    hist.hist([v for v in verdicts if v <= limit], bins=40, color="tab:blue", alpha=0.8)
    for value, label, style in ((median, "median", "-"), (p95, "p95", "--")):
        hist.axvline(value, color="black", linestyle=style, label=f"{label} {value:.1f} ms")
    beyond = [v for v in verdicts if v > limit]
    if beyond:
        hist.text(
            0.98,
            0.97,
            f"not drawn: {len(beyond)} beyond {limit:.0f} ms\n(max {max(beyond):.0f} ms)",
            transform=hist.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none"},
        )
    hist.set(title=f"push → stored verdict ({len(verdicts)} pushes)", xlabel="latency (ms)", ylabel="pushes")
    hist.legend()
    for values, label in ((verdicts, "push → stored verdict"), (events, "push → ImagePushed delivered")):
        ordered = sorted(values)
        cdf.step(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], where="post", label=label)
    for value, style in ((median, "-"), (p95, "--")):
        cdf.axvline(value, color="black", linestyle=style, linewidth=0.8)
    cdf.axhline(0.5, color="grey", linewidth=0.5)
    cdf.axhline(0.95, color="grey", linewidth=0.5)
    cdf.set(title="cumulative distribution", xlabel="latency (ms, log)", ylabel="fraction", xscale="log")
    # Plain numbers on the log axis; matplotlib's minor labels (2×10¹, 3×10¹, …) would collide.
    cdf.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    cdf.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    cdf.xaxis.set_minor_formatter(ticker.NullFormatter())
    cdf.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def cleanup_plan_time(data: Path, out: Path) -> Path | None:
    """Plan time against the number of groups: the pure planner, and a whole plan through the emulator."""
    source = data / "cleanup.json"
    if not source.exists():
        return None
    samples = json.loads(source.read_text())
    plt, _ = _pyplot()
    fig, (pure, emulated) = plt.subplots(1, 2, figsize=(11, 4))
    groups, ms = zip(*samples["planner"], strict=True)
    pure.plot(groups, ms, marker="o")
    pure.set(title="pure planner (median of 5)", xlabel="resource groups", ylabel="plan time (ms)")
    groups, ms, requests = zip(*samples["emulator"], strict=True)
    emulated.plot(groups, ms, marker="o", color="tab:orange")
    for x, y, count in zip(groups, ms, requests, strict=True):
        emulated.annotate(f"{count} req", (x, y), textcoords="offset points", xytext=(4, -12), fontsize=8)
    emulated.set(
        title="whole plan through the emulator (median of 3)",
        xlabel="resource groups (one in ten a lab)",
        ylabel="plan time (ms)",
    )
    for axes in (pure, emulated):
        axes.set_ylim(bottom=0)
        axes.set_xlim(left=0)
        axes.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def emulator_scale(data: Path, out: Path) -> Path | None:
    """The emulator's cost of one request against the number of groups (log scale: flat is the goal), and
    cleanup's plan time, page-wise against per candidate, without and with added latency."""
    source = data / "scale.json"
    if not source.exists():
        return None
    samples = json.loads(source.read_text())
    plt, ticker = _pyplot()
    fig, (costs, plans) = plt.subplots(1, 2, figsize=(11, 4))
    sizes = samples["sizes"]
    for label, values in samples["costs"].items():
        points = [(size, value) for size, value in zip(sizes, values, strict=True) if value is not None]
        costs.plot(*zip(*points, strict=True), marker="o", label=label)
    costs.set(
        title="emulator: one request (median of 50)",
        xlabel="resource groups in the subscription (log)",
        ylabel="ms",
        xscale="log",
    )
    costs.set_ylim(bottom=0)
    costs.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    costs.legend(fontsize=8)
    planned = sorted(samples["plans"], key=int)
    for label in samples["plans"][planned[0]]:
        seconds = [samples["plans"][size][label][0] for size in planned]
        style = "--" if label.startswith("per candidate") else "-"
        plans.plot([int(s) for s in planned], seconds, marker="o", linestyle=style, label=label)
    plans.set(
        title="cleanup plan (5% stale labs): page-wise vs per candidate",
        xlabel="resource groups (log)",
        ylabel="seconds",
        xscale="log",
    )
    plans.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    plans.legend(fontsize=8)
    for axes in (costs, plans):
        axes.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
