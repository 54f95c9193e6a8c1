#!/usr/bin/env python3
"""bench-peers-report.py CSV OUTDIR MACHINE: the table of lab/bench-peers.sh on stdout, and
results.json, chart.svg (time until the last client had its image, per scenario and tool,
with the link's floor) and results.md (machine line, tables, chart link) in OUTDIR.

The CSV holds one row per run. The summary has one row per scenario and tool: the median of
each figure over its runs, where a failed run counts as the longest time (so a tool that
failed in most runs has no time, and one failure in three gives the worse of the other two),
each run's last time, and the note of the run whose last time is the median.
Python's standard library only."""

import csv
import json
import sys
from html import escape

COLUMNS = [
    ("scenario", "scenario"),
    ("tool", "tool"),
    ("status", "status"),
    ("verified_s", "verified s"),
    ("last_s", "last s"),
    ("runs_last_s", "each run's last s"),
    ("floor_s", "floor s"),
    ("tx_ratio", "tx/img"),
    ("sender_cpu_s", "cpu s"),
    ("clients_cpu_s", "clients cpu s"),
    ("client_rss_mib", "rss MiB"),
    ("mbit_s", "Mbit/s"),
    ("fast_s", "fast s"),
    ("tcp_mbit_s", "tcp Mbit/s"),
    ("note", "note"),
]
RUN_COLUMNS = [c for key, title in COLUMNS if key != "runs_last_s"
               for c in ([(key, title), ("run", "run")] if key == "tool" else [(key, title)])]
# Times where a failed run counts as the longest (its goodput, mbit_s, as none).
TIMES = ("verified_s", "last_s", "fast_s")
DECIMALS = {"verified_s": 3, "last_s": 3, "fast_s": 3, "tx_ratio": 3, "sender_cpu_s": 2,
            "clients_cpu_s": 2, "client_rss_mib": 1, "mbit_s": 0, "tcp_mbit_s": 0}
TOOL_COLOURS = {
    "bb": "#1f77b4",
    "bb-fair": "#17becf",
    "udpcast": "#d62728",
    "udpcast-cap": "#ff9896",
    "udpcast-zstd": "#e377c2",
    "uftp": "#2ca02c",
    "uftp-tfmcc": "#98df8a",
    "blast": "#7f7f7f",
    "blast-write": "#c7c7c7",
    "blast-verify": "#a5a5a5",
}


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def shown(columns, rows):
    """The columns that hold a figure in some row (fast s and tcp Mbit/s only where their
    scenario ran); the note always."""
    return [(k, t) for k, t in columns if k == "note" or any(r.get(k, "-") not in ("-", "") for r in rows)]


def table(rows, columns):
    columns = shown(columns, rows)[:-1]
    widths = [max(len(title), *(len(r.get(key, "-")) for r in rows)) for key, title in columns]
    lines = ["  ".join(t.ljust(w) for (_, t), w in zip(columns, widths)) + "  note"]
    for r in rows:
        cells = [r.get(key, "-").ljust(w) for (key, _), w in zip(columns, widths)]
        lines.append("  ".join(cells) + "  " + r["note"])
    return "\n".join(lines)


def markdown(rows, columns):
    columns = shown(columns, rows)
    head = "| " + " | ".join(t for _, t in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(r.get(k, "-").replace("|", "/") for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def median(values):
    """The middle value (the mean of the two middle ones for an even count); None if none."""
    values = sorted(values)
    if not values:
        return None
    half = len(values) // 2
    return values[half] if len(values) % 2 else (values[half - 1] + values[half]) / 2


def median_index(values):
    """The index of the middle value (the lower of the two middle ones for an even count)."""
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    return order[(len(order) - 1) // 2]


def summarise(runs):
    """One row per scenario and tool (in the order they first ran) from its runs."""
    groups = {}
    for r in runs:
        groups.setdefault((r["scenario"], r["tool"]), []).append(r)
    rows = []
    for (scenario, tool), mine in groups.items():
        ok = [r["status"] == "ok" for r in mine]

        def time_of(r, key):
            t = number(r.get(key))
            return t if r["status"] == "ok" and t is not None else float("inf")

        row = {"scenario": scenario, "tool": tool, "floor_s": mine[0]["floor_s"]}
        if all(ok):
            row["status"] = "ok"
        elif len(mine) == 1:
            row["status"] = mine[0]["status"]
        else:
            failed = [f"run {r.get('run', '?')}: {r['status']}" for r in mine if r["status"] != "ok"]
            row["status"] = f"FAIL in {len(failed)}/{len(mine)} runs ({'; '.join(failed)})"
        for key, places in DECIMALS.items():
            if key in TIMES:
                if all(number(r.get(key)) is None for r in mine):
                    m = None
                else:
                    m = median([time_of(r, key) for r in mine])
            elif key == "mbit_s":
                m = median([number(r.get(key)) or 0.0 if r["status"] == "ok" else 0.0 for r in mine])
                m = m if m else None
            else:
                m = median([v for v in (number(r.get(key)) for r in mine) if v is not None])
            row[key] = "-" if m is None or m == float("inf") else f"{m:.{places}f}"
        row["runs_last_s"] = " ".join(
            (r["last_s"] if r["status"] == "ok" else f"{r['last_s']}!") for r in mine)
        # The runs' last times as numbers, failed runs' too: the chart's range.
        row["runs_last"] = [t for t in (number(r["last_s"]) for r in mine) if t is not None]
        # The note of the run whose last time is the median (the first of equals).
        row["note"] = mine[median_index([time_of(r, "last_s") for r in mine])]["note"]
        row["runs"] = len(mine)
        rows.append(row)
    return rows


def chart(rows, machine):
    """One panel per scenario: a bar per tool (the median time until the last client had its
    image), a thin line across the runs' fastest to slowest, each panel on its own linear
    scale, the floor as a dashed line; failures in red text."""
    scenarios = []
    for r in rows:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
    bar_h, gap, label_w, plot_w, top = 16, 4, 190, 520, 40
    y = top
    parts = []
    for scn in scenarios:
        mine = [r for r in rows if r["scenario"] == scn]
        times = [number(r["last_s"]) or 0 for r in mine]
        spreads = [r["runs_last"] for r in mine]
        floor = number(mine[0]["floor_s"])
        scale_max = max(times + [t for s in spreads for t in s] + [floor or 0, 0.001]) * 1.15
        parts.append(f'<text x="4" y="{y + 12}" font-weight="bold">{escape(scn)}</text>')
        y += 18
        panel_top = y
        for r, t, spread in zip(mine, times, spreads):
            tool = r["tool"].split(" ")[0]
            colour = TOOL_COLOURS.get(tool, "#bcbd22")
            parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(r["tool"])}</text>')
            width = plot_w * t / scale_max
            parts.append(f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="{bar_h}" fill="{colour}"/>')
            right = width
            if len(spread) > 1:
                x0, x1 = (label_w + plot_w * v / scale_max for v in (min(spread), max(spread)))
                ym = y + bar_h / 2
                parts.append(f'<line x1="{x0:.1f}" y1="{ym}" x2="{x1:.1f}" y2="{ym}" stroke="#000"/>'
                             f'<line x1="{x0:.1f}" y1="{ym - 4}" x2="{x0:.1f}" y2="{ym + 4}" stroke="#000"/>'
                             f'<line x1="{x1:.1f}" y1="{ym - 4}" x2="{x1:.1f}" y2="{ym + 4}" stroke="#000"/>')
                right = max(right, x1 - label_w)
            ok = r["status"] == "ok"
            text = f'{t:.3f} s' if t else "-"
            if not ok:
                # The status without its list of failed runs (the table has it).
                text += f' ({r["status"].split(" (")[0]})'
            fill = "#000" if ok else "#c00"
            parts.append(f'<text x="{label_w + right + 4:.1f}" y="{y + 12}" fill="{fill}">{escape(text)}</text>')
            y += bar_h + gap
        if floor:
            fx = label_w + plot_w * floor / scale_max
            parts.append(
                f'<line x1="{fx:.1f}" y1="{panel_top - 2}" x2="{fx:.1f}" y2="{y - gap + 2}" '
                f'stroke="#000" stroke-dasharray="4,3"/>'
                f'<text x="{fx + 2:.1f}" y="{panel_top - 4}" font-size="10">floor {floor:.3f} s</text>'
            )
        y += 12
    height = y + 10
    width = label_w + plot_w + 200
    title = "bench-peers: seconds until the last client had its image, median and range of the runs (shorter is better)"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">\n'
        f'<rect width="100%" height="100%" fill="#fff"/>\n'
        f'<text x="4" y="16" font-size="14" font-weight="bold">{escape(title)}</text>\n'
        f'<text x="4" y="32" font-size="10">{escape(machine)}</text>\n' + "\n".join(parts) + "\n</svg>\n"
    )


def read_rows(f):
    """The CSV's rows as dicts by its header. A row of the wrong length (a bench bug) must
    not cost the run its report: it is named, padded with "-" or its surplus dropped."""
    lines = csv.reader(f)
    header = next(lines, None)
    if header is None:
        return []
    rows = []
    for fields in lines:
        if len(fields) != len(header):
            print(f"bench-peers-report: {','.join(fields[:2])}: {len(fields)} fields where the "
                  f"header has {len(header)}; shown padded with '-' or cut", file=sys.stderr)
            fields = (fields + ["-"] * len(header))[: len(header)]
        rows.append(dict(zip(header, fields)))
    return rows


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: bench-peers-report.py CSV OUTDIR MACHINE")
    path, outdir, machine = sys.argv[1:]
    with open(path, newline="") as f:
        runs = read_rows(f)
    if not runs:
        sys.exit(f"bench-peers-report: no rows in {path}")
    rows = summarise(runs)
    most = max(r["runs"] for r in rows)
    print()
    print(f"bench-peers: {machine}; medians of {most} run{'s' if most > 1 else ''} per tool")
    print(table(rows, COLUMNS))
    with open(f"{outdir}/results.json", "w") as f:
        json.dump({"machine": machine, "summary": rows, "runs": runs}, f, indent=1)
    with open(f"{outdir}/chart.svg", "w") as f:
        f.write(chart(rows, machine))
    with open(f"{outdir}/results.md", "w") as f:
        f.write(f"Run: {machine}\n\nMedians of {most} run{'s' if most > 1 else ''} per scenario and tool "
                f"(a failed run counts as the longest time; its last time is marked !):\n\n{markdown(rows, COLUMNS)}\n\n"
                f"![time per scenario and tool](chart.svg)\n\nEvery run:\n\n{markdown(runs, RUN_COLUMNS)}\n")
    print(f"\nwritten: {outdir}/results.csv, results.json, results.md, chart.svg")


if __name__ == "__main__":
    main()
