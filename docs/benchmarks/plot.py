"""Plots from results.json (written by `tidewal-peers run`): per store, durable writes/s vs
payload size (depth 32) and ack p50 vs writes/s (every durable cell), one line per system, the
raw put loop as the limit line. `python3 plot.py results.json OUT_DIR`."""
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


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
