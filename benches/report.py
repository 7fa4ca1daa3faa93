"""Turns benchmark JSON files into the README's results tables and a PNG chart.

    python3 benches/report.py [WARM.json] [--cold COLD.json] [--readme README.md]
                              [--png docs/speed.png] [--out TABLE.md]

``WARM.json`` is pytest-benchmark's (``benches/bench_encode.py`` and friends): MB/s is input
bytes / mean time, per contender, with the ratio to tiktoken measured in the same run.
``COLD.json`` is ``benches/cold.py``'s: medians over fresh processes of the first call (cold) and
of the third call (warm), fastllm beside quicktok, splintr and tiktoken, with fastllm's ratio to
the best exact peer and to tiktoken, the pathological inputs, load times and issue 15's targets.
The chart (when matplotlib is installed) shows the cold figures when given, else the warm ones.
With ``--readme`` the tables replace the text between ``<!-- bench:start -->`` and
``<!-- bench:end -->``; ``--out`` writes them to a file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


PEERS = ("quicktok", "splintr", "tiktoken")
MODES = {"single": "one thread", "batch": "batch, all cores", "decode": "decode"}
KIND_LABELS = {"english": "English prose", "python": "Python source", "non_latin": "non-Latin"}


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


def fmt_ratio(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}×"


def speed_table(groups: dict[str, dict[str, dict]]) -> list[str]:
    contenders = [
        "fastllm",
        "fastllm_numpy",
        "quicktok",
        "splintr",
        "tiktoken",
        "tiktoken_one_thread",
        "hf_tokenizers",
        "pure_python",
    ]
    present = {c for row in groups.values() for c in row}
    contenders = [c for c in contenders if c in present or c in ("fastllm", "tiktoken")]
    lines = [
        "| benchmark | "
        + " | ".join(c for c in contenders)
        + " | fastllm ÷ tiktoken | fastllm ÷ best peer |",
        "|---|" + "---|" * (len(contenders) + 2),
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
        ours = row.get("fastllm_numpy") if group.startswith("batch") else None
        ours = ours or row.get("fastllm")
        ratio = ours["mbps"] / base["mbps"] if ours and base else None
        peers = [row[p]["mbps"] for p in ("quicktok", "splintr") if row.get(p, {}).get("exact")]
        best = ours["mbps"] / max(peers) if ours and peers else None
        lines.append(
            f"| {group} (MB/s) | "
            + " | ".join(cells)
            + f" | {fmt_ratio(ratio)} | {fmt_ratio(best, 2)} |"
        )
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


# ---------------------------------------------------------------------------------------------
# Cold figures (benches/cold.py)
# ---------------------------------------------------------------------------------------------

Cold = dict[tuple[str, str, str, str], dict]


def load_cold(path: Path, clock: str = "wall") -> tuple[Cold, dict, list[dict]]:
    """(section, encoding, kind, contender) -> extra_info (with the stats), machine, skipped.

    ``clock="cpu"``: one-thread cells (not batch) give CPU-time figures instead of wall-clock.
    """
    data = json.loads(path.read_text())
    cells: Cold = {}
    for bench in data["benchmarks"]:
        info = dict(bench["extra_info"])
        info["median_s"] = bench["stats"]["median"]
        info["wall_mbps"] = info["mbps"]
        if clock == "cpu" and info["section"] != "batch" and info.get("cpu_mbps"):
            info["mbps"], info["median_s"] = info["cpu_mbps"], info["cpu_s"]
            info["warm_mbps"], info["warm_s"] = info.get("warm_cpu_mbps"), info.get("warm_cpu_s")
        key = (info["section"], info["encoding"], info["kind"], info["contender"])
        cells[key] = info
    return cells, data.get("machine_info", {}), data.get("skipped", [])


def _encodings(cells: Cold) -> list[str]:
    order = ["gpt2", "r50k_base", "cl100k_base", "o200k_base"]
    found = {k[1] for k in cells}
    return [n for n in order if n in found] + sorted(found - set(order))


def cold_machine_line(machine: dict, cells: Cold) -> str:
    versions = machine.get("versions", {})
    peers = ", ".join(f"{p} {v}" for p, v in versions.items() if v and p != "numpy")
    loads = sorted(x for c in cells.values() for x in c.get("loadavg_1min", []))
    median_load = f"{loads[len(loads) // 2]:.1f}" if loads else "?"
    return (
        f"{machine_line(machine)}; {peers}. Load average (1 min) at the start of the measured "
        f"processes: median {median_load}, range {loads[0]:.1f}-{loads[-1]:.1f} "
        f"(shared machine; before the run: {_load(machine.get('uptime_before', ''))}, after: "
        f"{_load(machine.get('uptime_after', ''))})."
        if loads
        else machine_line(machine)
    )


def _load(uptime: str) -> str:
    return uptime.split("load average:")[-1].strip() if uptime else "?"


def _skip_reason(skipped: list[dict], section: str, name: str, kind: str, contender: str) -> str:
    for s in skipped:
        if s.get("contender") != contender or s.get("encoding") != name:
            continue
        if "section" not in s:
            return "n/a"
        if s["section"] == section and s["kind"] == kind:
            return "not exact" if "not exact" in s["reason"] else "failed"
    return ""


def _cell(c: dict | None) -> str:
    if c is None:
        return ""
    mark = "" if c.get("exact") else " (not exact)"
    warm = c.get("warm_mbps")
    return f"{c['mbps']:.1f} / {warm:.1f}{mark}" if warm else f"{c['mbps']:.1f}{mark}"


def _best_peer(cells: Cold, section: str, name: str, kind: str) -> float | None:
    peers = [cells.get((section, name, kind, p)) for p in ("quicktok", "splintr")]
    values = [c["mbps"] for c in peers if c and c.get("exact")]
    return max(values) if values else None


def cold_speed_table(cells: Cold, skipped: list[dict]) -> list[str]:
    columns = ["fastllm", "fastllm_numpy", *PEERS]
    header = ["fastllm", "fastllm `encode_to_numpy`", "quicktok", "splintr", "tiktoken"]
    lines = [
        "| encoding | text | mode | "
        + " | ".join(header)
        + " | fastllm ÷ best peer | fastllm ÷ tiktoken |",
        "|---|---|---|" + "---|" * (len(header) + 2),
    ]
    for name in _encodings(cells):
        for section, mode in MODES.items():
            for kind, label in KIND_LABELS.items():
                row = {c: cells.get((section, name, kind, c)) for c in columns}
                if not any(row.values()):
                    continue
                shown = []
                for c in columns:
                    text = _cell(row[c])
                    if not text and c != "fastllm_numpy":
                        text = _skip_reason(skipped, section, name, kind, c)
                    shown.append(text)
                ours = row["fastllm"]
                best = _best_peer(cells, section, name, kind)
                tik = row["tiktoken"]
                r_best = ours["mbps"] / best if ours and best else None
                r_tik = ours["mbps"] / tik["mbps"] if ours and tik else None
                lines.append(
                    f"| {name} | {label} | {mode} | "
                    + " | ".join(shown)
                    + f" | {fmt_ratio(r_best, 2)} | {fmt_ratio(r_tik)} |"
                )
    return lines


def cold_pathological_table(cells: Cold, skipped: list[dict] | None = None) -> list[str]:
    """A peer that failed an input (tiktoken's regex overflows its stack on o200k_base's 1 MB of
    spaces) shows ``failed``; inputs tiktoken failed are checked against fastllm (``†``)."""
    lines = [
        "| encoding | 1 MB input | fastllm (ms) | 2 MB, fastllm (ms) | doubling "
        "| quicktok (ms) | splintr (ms) | tiktoken (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in _encodings(cells):
        kinds = sorted(
            {k[2].rsplit(" ", 1)[0] for k in cells if k[0] == "pathological" and k[1] == name},
            key=_path_order,
        )
        for kind in kinds:

            def ms(contender: str, mb: int, kind: str = kind, name: str = name) -> float | None:
                c = cells.get(("pathological", name, f"{kind} {mb}MB", contender))
                return c["median_s"] * 1e3 if c else None

            one, two = ms("fastllm", 1), ms("fastllm", 2)
            if one is None:
                continue
            growth = f"{two / one:.2f}×" if two else ""
            label = f"{kind} 1MB"
            shown = " | ".join(
                f"{v:.1f}"
                if (v := ms(p, 1)) is not None
                else _skip_reason(skipped or [], "pathological", name, label, p)
                for p in PEERS
            )
            ours = cells.get(("pathological", name, label, "fastllm"), {})
            mark = " †" if ours.get("exact_against", "tiktoken") != "tiktoken" else ""
            two_ms = f"{two:.1f}" if two else ""
            lines.append(f"| {name} | {kind}{mark} | {one:.1f} | {two_ms} | {growth} | {shown} |")
    return lines


def _path_order(kind: str) -> int:
    order = ["a", "spaces", "space_newline", "digits", "punctuation", "cjk_word", "cjk_char"]
    return order.index(kind) if kind in order else len(order)


def cold_load_table(cells: Cold) -> list[str]:
    contenders = ["fastllm", *PEERS]
    lines = [
        "| encoding | " + " | ".join(contenders) + " |",
        "|---|" + "---|" * len(contenders),
    ]
    for name in _encodings(cells):
        shown = []
        for c in contenders:
            loads = sorted(v["load_s"] for k, v in cells.items() if k[1] == name and k[3] == c)
            shown.append(f"{loads[len(loads) // 2] * 1e3:.0f}" if loads else "")
        lines.append(f"| {name} | " + " | ".join(shown) + " |")
    return lines


def _target(label: str, items: list[tuple[str, float]], goal: float, above: bool) -> str:
    if not items:
        return f"- {label}: not measured"
    met = [(n, v) for n, v in items if (v >= goal if above else v <= goal)]
    worst = min(items, key=lambda kv: kv[1]) if above else max(items, key=lambda kv: kv[1])
    return f"- {label}: met {len(met)}/{len(items)} (worst {worst[0]}: {worst[1]:.2f})"


def cold_targets(cells: Cold) -> list[str]:
    """Issue 15's targets (and issue 11's o200k ones) against these cold figures."""
    one, batch, own, first, decode, path, double = [], [], [], [], [], [], []
    o200k_tik, o200k_qt = [], []
    for name in _encodings(cells):
        for kind in KIND_LABELS:
            where = f"{name} {kind}"
            single = cells.get(("single", name, kind, "fastllm"))
            many = cells.get(("batch", name, kind, "fastllm"))
            best = _best_peer(cells, "single", name, kind)
            best_batch = _best_peer(cells, "batch", name, kind)
            if single and best:
                one.append((where, single["mbps"] / best))
            if many and best_batch:
                batch.append((where, many["mbps"] / best_batch))
            if many and single:  # both wall-clock, whatever the clock of the tables
                own.append((where, many["wall_mbps"] / single["wall_mbps"]))
            for section, c in (("one thread", single), ("batch", many)):
                if c and c.get("warm_s"):
                    first.append((f"{where} {section}", c["median_s"] / c["warm_s"]))
            dec, tik = (cells.get(("decode", name, kind, c)) for c in ("fastllm", "tiktoken"))
            if dec and tik:
                decode.append((where, dec["mbps"] / tik["mbps"]))
            if name == "o200k_base" and single:
                tik1 = cells.get(("single", name, kind, "tiktoken"))
                qt1 = cells.get(("single", name, kind, "quicktok"))
                if tik1:
                    o200k_tik.append((where, single["mbps"] / tik1["mbps"]))
                if qt1 and qt1.get("exact"):
                    o200k_qt.append((where, single["mbps"] / qt1["mbps"]))
        for (section, n, kind, c), v in cells.items():
            if section == "pathological" and n == name and c == "fastllm" and kind.endswith(" 1MB"):
                base = kind.rsplit(" ", 1)[0]
                path.append((f"{name} {base}", v["median_s"] * 1e3))
                two = cells.get(("pathological", name, f"{base} 2MB", "fastllm"))
                if two:
                    double.append((f"{name} {base}", two["median_s"] / v["median_s"]))
    lines = [
        _target("One thread >= 1.5× the best exact peer", one, 1.5, True),
        _target("Batch >= 1.5× the best exact peer's batch call", batch, 1.5, True),
        _target("Batch >= 1.8× fastllm's own one-thread figure", own, 1.8, True),
        _target("First call within 10% of a warm call (cold time ÷ warm time)", first, 1.1, False),
        _target("Every 1 MB pathological input <= 20 ms (ms)", path, 20.0, False),
        _target("Doubling a pathological input <= 2.2× the time", double, 2.2, False),
        _target("Decode >= 2.5× tiktoken", decode, 2.5, True),
    ]
    if o200k_tik:
        lines.append(_target("o200k_base one thread >= 4× tiktoken", o200k_tik, 4.0, True))
        lines.append(_target("o200k_base one thread >= 1.3× quicktok", o200k_qt, 1.3, True))
    return lines


def cold_report(cells: Cold, machine: dict, skipped: list[dict], clock: str = "wall") -> list[str]:
    procs = min((c.get("processes", 0) for c in cells.values()), default=0)
    clock_note = (
        "Clock: CPU time of the process (`time.process_time`) for one-thread, decode and "
        "pathological figures, so that other processes on a shared machine slow them little; "
        "wall-clock for batch figures."
        if clock == "cpu"
        else "Clock: wall (`time.perf_counter`)."
    )
    lines = [
        f"Cold: each figure is the median of {procs} fresh processes, the first call on text "
        "the process has not seen (warm: the third call of the same process, on a third "
        "text); MB/s shown as cold / warm. One thread: pinned to one core. Batch: 1-10 KB "
        "documents on all cores, flat output (fastllm `encode_ordinary_batch_to_numpy`, "
        "quicktok `encode_batch`, splintr `encode_batch_flat`, tiktoken "
        "`encode_ordinary_batch`). Every peer was checked exact against tiktoken (built from "
        "the same `.tiktoken` file) on the measured text before it was timed. NumPy is "
        "imported before the clock starts (every batch call and `encode_to_numpy` return "
        f"arrays). {clock_note}",
        "",
        f"Measured on: {cold_machine_line(machine, cells)}",
        "",
        *cold_speed_table(cells, skipped),
        "",
        "Pathological inputs, cold (one thread, median ms):",
        "",
        *cold_pathological_table(cells, skipped),
        "",
        *(
            [
                "† tiktoken failed on this input (see Not timed below): the other contenders "
                "were checked against fastllm's output instead.",
                "",
            ]
            if any(c.get("exact_against", "tiktoken") != "tiktoken" for c in cells.values())
            else []
        ),
        "Loading an encoding (first `get_encoding` or constructor in a process, median ms):",
        "",
        *cold_load_table(cells),
        "",
        "Targets of issue 15 (cold figures):",
        "",
        *cold_targets(cells),
        "",
    ]
    notes = sorted({f"{s['contender']} {s['encoding']}: {s['reason']}" for s in skipped})
    if notes:
        lines += ["Not timed:", "", *(f"- {n}" for n in notes), ""]
    return lines


def cold_chart(cells: Cold, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        (section, name, kind)
        for name in _encodings(cells)
        for section in MODES
        for kind in KIND_LABELS
        if (section, name, kind, "fastllm") in cells
    ]
    contenders = [c for c in ("fastllm", *PEERS) if any((*r, c) in cells for r in rows)]
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 1.5))
    height = 0.8 / max(len(contenders), 1)
    for k, c in enumerate(contenders):
        values = [
            cells[(*r, c)]["mbps"] if cells.get((*r, c), {}).get("exact") else 0.0 for r in rows
        ]
        ax.barh([i + k * height for i in range(len(rows))], values, height=height, label=c)
    labels = [f"{name} {KIND_LABELS[kind]}, {MODES[section]}" for section, name, kind in rows]
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("MB/s, first call in a fresh process (log scale, higher is better)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("fastllm vs exact peers, cold: same vocabulary files, median of fresh processes")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, nargs="?", help="pytest-benchmark JSON (warm)")
    parser.add_argument("--cold", type=Path, help="benches/cold.py JSON")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cold one-thread figures from wall-clock (default) or CPU time",
    )
    parser.add_argument("--readme", type=Path)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--out", type=Path, help="write the tables (Markdown) here too")
    args = parser.parse_args()
    if not args.json and not args.cold:
        parser.error("give a pytest-benchmark JSON file, --cold COLD.json, or both")
    lines: list[str] = []
    cells: Cold = {}
    if args.cold:
        cells, cold_machine, skipped = load_cold(args.cold, args.clock)
        lines += cold_report(cells, cold_machine, skipped, args.clock)
    groups: dict[str, dict[str, dict]] = {}
    if args.json:
        groups, machine = load(args.json)
        if args.cold:
            lines += ["Warm (pytest-benchmark rounds, mean of each round's unseen text):", ""]
        lines += [f"Measured on: {machine_line(machine)}.", "", *speed_table(groups), ""]
        lines += ["Pathological inputs (one thread):", "", *pathological_table(groups), ""]
        memory = memory_lines(groups)
        if memory:
            lines += ["Peak memory of `encode_to_numpy` on 20 MB of text:", "", *memory, ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.png:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"matplotlib is not installed: {args.png} not written", file=sys.stderr)
        else:
            if cells:
                cold_chart(cells, args.png)
            else:
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
