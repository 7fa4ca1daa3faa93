"""Turns a pytest-benchmark JSON file into the README's results table and a PNG chart.

    python3 benches/report.py RESULTS.json [--readme README.md] [--png docs/speed.png]

The table gives MB/s (input bytes / mean time) per contender and the ratio to tiktoken measured
in the same run; the chart shows the same ratios. With ``--readme`` the table replaces the text
between ``<!-- bench:start -->`` and ``<!-- bench:end -->``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def load(path: Path) -> tuple[dict[str, dict[str, dict]], dict]:
    data = json.loads(path.read_text())
    groups: dict[str, dict[str, dict]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        contender = info.get("contender")
        if not contender or "bytes" not in info:
            continue
        group = bench["group"] or bench["name"]
        size = info["bytes"]
        if group.startswith("pathological"):
            group = f"{group} {size // 1_000_000}MB"
        key = bench["name"] if group.startswith("memory") else contender
        groups[group][key] = {
            "name": bench["param"] or bench["name"],
            "mean": bench["stats"]["mean"],
            "mbps": size / bench["stats"]["mean"] / 1e6,
            "exact": info.get("exact"),
            **info,
        }
    return groups, data.get("machine_info", {})


def machine_line(machine: dict) -> str:
    cpu = machine.get("cpu", {}).get("brand_raw") or machine.get("processor") or "unknown CPU"
    cores = machine.get("cores") or machine.get("cpu", {}).get("count")
    python = machine.get("python_version", "")
    return f"{cpu}, {cores} cores, Python {python}"


def fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}×"


def speed_table(groups: dict[str, dict[str, dict]]) -> list[str]:
    contenders = [
        "fastllm",
        "fastllm_numpy",
        "tiktoken",
        "tiktoken_one_thread",
        "hf_tokenizers",
        "pure_python",
    ]
    lines = [
        "| benchmark | " + " | ".join(c for c in contenders) + " | fastllm ÷ tiktoken |",
        "|---|" + "---|" * (len(contenders) + 1),
    ]
    for group in sorted(g for g in groups if not g.startswith(("pathological", "memory"))):
        row = groups[group]
        cells = []
        for c in contenders:
            r = row.get(c)
            if r is None:
                cells.append("")
            else:
                mark = "" if r.get("exact") in (True, None) else " (not exact)"
                cells.append(f"{r['mbps']:.1f}{mark}")
        base = row.get("tiktoken_one_thread") or row.get("tiktoken")
        ratio = row["fastllm"]["mbps"] / base["mbps"] if "fastllm" in row and base else None
        lines.append(f"| {group} (MB/s) | " + " | ".join(cells) + f" | {fmt_ratio(ratio)} |")
    return lines


def pathological_table(groups: dict[str, dict[str, dict]]) -> list[str]:
    lines = [
        "| 1 MB input | fastllm (ms) | 2 MB, fastllm (ms) | growth | tiktoken (ms) | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    names = sorted({g.rsplit(" ", 1)[0] for g in groups if g.startswith("pathological")})
    for name in names:
        one, two = groups.get(f"{name} 1MB", {}), groups.get(f"{name} 2MB", {})
        ours = one.get("fastllm", {}).get("mean")
        ours2 = two.get("fastllm", {}).get("mean")
        theirs = one.get("tiktoken", {}).get("mean")
        if ours is None:
            continue
        growth = f"{ours2 / ours:.2f}×" if ours2 else ""
        speedup = fmt_ratio(theirs / ours if theirs else None)
        their_ms = f"{theirs * 1e3:.0f}" if theirs else ""
        ours2_ms = f"{ours2 * 1e3:.1f}" if ours2 else ""
        label = name.replace("pathological ", "")
        lines.append(
            f"| {label} | {ours * 1e3:.1f} | {ours2_ms} | {growth} | {their_ms} | {speedup} |"
        )
    return lines


def memory_lines(groups: dict[str, dict[str, dict]]) -> list[str]:
    out = []
    for group, row in sorted(groups.items()):
        if group.startswith("memory"):
            for r in row.values():
                out.append(
                    f"- {r.get('name', group)}: {r['bytes'] / 1e6:.1f} MB of text, "
                    f"{r['tokens']:,} tokens, {r['extra_mb']:.1f} MB above baseline "
                    f"(budget 4.5 B/token + 16 MB = {r['budget_mb']:.1f} MB)"
                )
    return out


def chart(groups: dict[str, dict[str, dict]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [g for g in sorted(groups) if g.startswith(("encode", "batch", "decode"))]
    contenders = [
        c
        for c in ["fastllm", "tiktoken", "hf_tokenizers", "pure_python"]
        if any(c in groups[g] for g in rows)
    ]
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 1.5))
    height = 0.8 / max(len(contenders), 1)
    for k, c in enumerate(contenders):
        values = [groups[g].get(c, {}).get("mbps", 0.0) for g in rows]
        ax.barh([i + k * height for i in range(len(rows))], values, height=height, label=c)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], rows, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("MB/s (log scale, higher is better)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("fastllm vs peers, same vocabulary files, unseen text each round")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path)
    parser.add_argument("--readme", type=Path)
    parser.add_argument("--png", type=Path)
    args = parser.parse_args()
    groups, machine = load(args.json)
    lines = [f"Measured on: {machine_line(machine)}.", "", *speed_table(groups), ""]
    lines += ["Pathological inputs (one thread):", "", *pathological_table(groups), ""]
    memory = memory_lines(groups)
    if memory:
        lines += ["Peak memory of `encode_to_numpy` on 20 MB of text:", "", *memory, ""]
    text = "\n".join(lines)
    print(text)
    if args.png:
        chart(groups, args.png)
    if args.readme:
        readme = args.readme.read_text()
        block = f"{START}\n{text}\n{END}"
        if START in readme:
            readme = re.sub(
                re.escape(START) + ".*?" + re.escape(END), lambda _: block, readme, flags=re.S
            )
        else:
            readme += "\n" + block + "\n"
        args.readme.write_text(readme)


if __name__ == "__main__":
    main()
