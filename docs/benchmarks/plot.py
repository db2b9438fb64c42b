"""Plots from results.json (written by `tidewal-peers run`), one line per system and the raw
put loop as the limit line: per store, durable writes/s vs payload size (depth 32) and ack p50
vs writes/s; across the throttled stores, durable writes/s vs per-request latency; and group
commit and replay side by side. `python3 plot.py results.json OUT_DIR`."""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"tidewal": "C0", "slatedb": "C1", "lance": "C2", "raw": "k"}


def main(results, out):
    cells = [c for c in json.load(open(results))["cells"] if "error" not in c]
    out = Path(out)
    for store in sorted({c["store"] for c in cells}):
        durable = [c for c in cells if c["store"] == store and c["workload"] == "durable"]
        fig, (by_size, by_latency) = plt.subplots(1, 2, figsize=(11, 4))
        for system in sorted({c["system"] for c in durable}, key=list(STYLE).index):
            mine = [c for c in durable if c["system"] == system]
            deep = sorted((c for c in mine if c["depth"] == 32), key=lambda c: c["size"])
            style = dict(color=STYLE.get(system), linestyle="--" if system == "raw" else "-", marker="o")
            label = "raw put loop (limit)" if system == "raw" else system
            by_size.plot([c["size"] / 1024 for c in deep], [c["writes_per_sec"] for c in deep], label=label, **style)
            pts = sorted(mine, key=lambda c: c["writes_per_sec"])
            by_latency.plot([c["writes_per_sec"] for c in pts], [c["p50_ms"] for c in pts], label=label, **style)
        by_size.set(xscale="log", yscale="log", xlabel="payload per durable write (KiB)",
                    ylabel="durable writes/s", title=f"{store}: depth 32")
        by_latency.set(xscale="log", xlabel="durable writes/s", ylabel="ack p50 (ms)",
                       title=f"{store}: latency vs throughput")
        for ax in (by_size, by_latency):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"{store}.svg")
        plt.close(fig)
        print(f"wrote {out / (store + '.svg')}")
    by_store_latency(cells, out)
    group_and_replay(cells, out)


def ms(store):
    """Per-request latency of a throttled store (`throttled-20` -> 20), else None."""
    return int(store.split("-")[1]) if store.startswith("throttled-") else None


def systems_of(cells):
    return sorted({c["system"] for c in cells}, key=list(STYLE).index)


def by_store_latency(cells, out):
    """Durable writes/s at depth 32 vs the store's per-request latency, one panel per size."""
    sizes = sorted({c["size"] for c in cells if c["workload"] == "durable"})
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        mine = [c for c in cells if c["workload"] == "durable" and c["depth"] == 32
                and c["size"] == size and ms(c["store"]) is not None]
        for system in systems_of(mine):
            pts = sorted((c for c in mine if c["system"] == system), key=lambda c: ms(c["store"]))
            style = dict(color=STYLE.get(system), linestyle="--" if system == "raw" else "-", marker="o")
            label = "raw put loop (limit)" if system == "raw" else system
            ax.plot([ms(c["store"]) for c in pts], [c["writes_per_sec"] for c in pts], label=label, **style)
        label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
        ax.set(xscale="log", yscale="log", xlabel="store latency per request (ms)",
               ylabel="durable writes/s", title=f"{label} writes, depth 32")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency.svg")
    plt.close(fig)
    print(f"wrote {out / 'latency.svg'}")


def group_and_replay(cells, out):
    """Bars per store: group commit writes/s, its PUTs per MB, and replay MB/s."""
    stores = sorted({c["store"] for c in cells}, key=lambda s: (ms(s) is None, ms(s) or 0, s))
    panels = [("group", "writes_per_sec", "group commit: writes/s (64 writers x 1 KiB)"),
              ("group", "puts_per_mb", "group commit: PUTs per MB (lower is better)"),
              ("replay", "replay_mb_per_sec", "replay: MB/s")]
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 4))
    for ax, (workload, metric, title) in zip(axes, panels):
        mine = [c for c in cells if c["workload"] == workload and metric in c]
        systems = systems_of(mine)
        width = 0.8 / max(len(systems), 1)
        for i, system in enumerate(systems):
            values = {c["store"]: c[metric] for c in mine if c["system"] == system}
            xs = [j + i * width for j, s in enumerate(stores) if s in values]
            ax.bar(xs, [values[s] for s in stores if s in values], width,
                   color=STYLE.get(system), label="raw GET loop" if system == "raw" else system)
        ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(stores))], stores)
        ax.set(yscale="log", title=title)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "group_replay.svg")
    plt.close(fig)
    print(f"wrote {out / 'group_replay.svg'}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
