#!/usr/bin/env python3
"""bench-peers-report.py CSV OUTDIR MACHINE: the table of lab/bench-peers.sh on stdout, and
results.json, chart.svg (time until the last client had its image, per scenario and tool,
with the link's floor) and results.md (machine line, table, chart link) in OUTDIR.
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
    ("floor_s", "floor s"),
    ("tx_ratio", "tx/img"),
    ("sender_cpu_s", "cpu s"),
    ("clients_cpu_s", "clients cpu s"),
    ("client_rss_mib", "rss MiB"),
    ("mbit_s", "Mbit/s"),
    ("note", "note"),
]
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
}


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def table(rows):
    widths = [max(len(title), *(len(r[key]) for r in rows)) for key, title in COLUMNS[:-1]]
    lines = ["  ".join(t.ljust(w) for (_, t), w in zip(COLUMNS[:-1], widths)) + "  note"]
    for r in rows:
        cells = [r[key].ljust(w) for (key, _), w in zip(COLUMNS[:-1], widths)]
        lines.append("  ".join(cells) + "  " + r["note"])
    return "\n".join(lines)


def markdown(rows):
    head = "| " + " | ".join(t for _, t in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(r[k].replace("|", "/") for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def chart(rows, machine):
    """One panel per scenario: a bar per tool (time until the last client had its image),
    each panel on its own linear scale, the floor as a dashed line; failures in red text."""
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
        floor = number(mine[0]["floor_s"])
        scale_max = max(times + [floor or 0, 0.001]) * 1.15
        parts.append(f'<text x="4" y="{y + 12}" font-weight="bold">{escape(scn)}</text>')
        y += 18
        panel_top = y
        for r, t in zip(mine, times):
            tool = r["tool"].split(" ")[0]
            colour = TOOL_COLOURS.get(tool, "#bcbd22")
            parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(r["tool"])}</text>')
            width = plot_w * t / scale_max
            parts.append(f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="{bar_h}" fill="{colour}"/>')
            ok = r["status"] == "ok"
            text = f'{t:.3f} s' if t else "-"
            if not ok:
                text += f' ({r["status"]})'
            fill = "#000" if ok else "#c00"
            parts.append(f'<text x="{label_w + width + 4:.1f}" y="{y + 12}" fill="{fill}">{escape(text)}</text>')
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
    title = "bench-peers: seconds until the last client had its image (shorter is better)"
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
        rows = read_rows(f)
    if not rows:
        sys.exit(f"bench-peers-report: no rows in {path}")
    print()
    print(f"bench-peers: {machine}")
    print(table(rows))
    with open(f"{outdir}/results.json", "w") as f:
        json.dump({"machine": machine, "rows": rows}, f, indent=1)
    with open(f"{outdir}/chart.svg", "w") as f:
        f.write(chart(rows, machine))
    with open(f"{outdir}/results.md", "w") as f:
        f.write(f"Run: {machine}\n\n{markdown(rows)}\n\n![time per scenario and tool](chart.svg)\n")
    print(f"\nwritten: {outdir}/results.csv, results.json, results.md, chart.svg")


if __name__ == "__main__":
    main()
