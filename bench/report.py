"""Turn the rounds of a run into medians, ratios to nginx, a markdown table, a chart and files.

Ratios to nginx are taken round by round (each proxy against nginx's run in the same round)
and the median of those ratios is reported, so machine drift between rounds cancels out.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

# issue 3's targets, checked against the small GET keep-alive scenario and idle-1k
TARGET_SCENARIO = "get-keepalive"
RSS_TARGET_MIB = 60


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(rounds: dict[str, list[dict]]) -> dict[str, dict]:
    """Per proxy: medians over its rounds, and median per-round ratios to nginx and others."""
    summary: dict[str, dict] = {}
    ref = {r["round"]: r for r in rounds.get("nginx", [])}
    for name, runs in rounds.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            summary[name] = {"rounds": 0, "error": runs[-1].get("error") if runs else "no runs"}
            continue
        row = {
            "rounds": len(ok),
            "rps": _median([r["rps"] for r in ok]),
            "p50_ms": _median([r["latency_us"]["p50"] / 1000 for r in ok]),
            "p99_ms": _median([r["latency_us"]["p99"] / 1000 for r in ok]),
            "user_us_per_req": _median([r["user_us_per_req"] for r in ok]),
            "sys_us_per_req": _median([r["sys_us_per_req"] for r in ok]),
            "peak_rss_mib": max(r["hwm_kib"] for r in ok) / 1024,
            "errors": sum(r["error_count"] for r in ok),
            "other_cpu_s": _median([r["other_cpu_s"] for r in ok]),
        }
        if ref:
            pairs = [(r, ref[r["round"]]) for r in ok
                     if r["round"] in ref and "error" not in ref[r["round"]]]
            row["rps_vs_nginx"] = _median([a["rps"] / b["rps"] for a, b in pairs])
            row["p99_vs_nginx"] = _median([a["latency_us"]["p99"] / b["latency_us"]["p99"]
                                           for a, b in pairs if b["latency_us"]["p99"]])
            row["user_vs_nginx"] = _median([a["user_us_per_req"] / b["user_us_per_req"]
                                            for a, b in pairs if b["user_us_per_req"]])
        summary[name] = row
    for peer in ("aiohttp", "proxy.py"):
        other = {r["round"]: r for r in rounds.get(peer, []) if "error" not in r}
        for name in ("fastgw", "fastgw-pure"):
            if name in summary and other and summary[name].get("rounds"):
                ratios = [r["rps"] / other[r["round"]]["rps"] for r in rounds[name]
                          if "error" not in r and r["round"] in other
                          and other[r["round"]]["rps"]]
                summary[name][f"rps_vs_{peer}"] = _median(ratios)
    return summary


def _one_line(text: str, limit: int = 200) -> str:
    """An error message fit for a table cell: the first and last lines, no pipes."""
    lines = [line.strip() for line in text.replace("|", "/").splitlines() if line.strip()]
    if len(lines) > 2:
        lines = [lines[0], "…", lines[-1]]
    joined = " ".join(lines)
    return joined if len(joined) <= limit else joined[:limit] + "…"


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "–" if value is None else format(value, spec) + suffix


def targets(run: dict) -> list[tuple[bool | None, str]]:
    """Issue 3's targets that this run can judge: (met, text); met is None when not measured."""
    out: list[tuple[bool | None, str]] = []
    row = run["scenarios"].get(TARGET_SCENARIO, {}).get("summary", {}).get("fastgw")
    if row and row.get("rounds"):
        checks = [
            ("rps_vs_nginx", ">=", 0.9, "requests/s at least 0.9× nginx's"),
            ("p99_vs_nginx", "<=", 1.3, "p99 latency at most 1.3× nginx's"),
            ("user_vs_nginx", "<=", 1.5, "user CPU per request at most 1.5× nginx's"),
            ("rps_vs_aiohttp", ">=", 10, "requests/s at least 10× the aiohttp proxy's"),
            ("rps_vs_proxy.py", ">=", 5, "requests/s at least 5× proxy.py's"),
        ]
        for key, op, bound, text in checks:
            value = row.get(key)
            if value is None:
                out.append((None, f"{TARGET_SCENARIO}: {text}: not measured"))
                continue
            met = value >= bound if op == ">=" else value <= bound
            out.append((met, f"{TARGET_SCENARIO}: {text}: {value:.2f}×"))
    idle = run.get("idle", {}).get("fastgw")
    if idle and "rss_mib" in idle:
        out.append((idle["rss_mib"] < RSS_TARGET_MIB and idle["open"] == idle["connections"],
                    f"idle-1k: RSS under {RSS_TARGET_MIB} MB with {idle['connections']} idle "
                    f"keep-alive connections: {idle['rss_mib']:.1f} MiB "
                    f"({idle['open']} still open)"))
    return out


def markdown(run: dict) -> str:
    m = run["machine"]
    o = run["options"]
    lines = [
        f"# fastgw benchmark — {run['started'][:16].replace('T', ' ')} UTC",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"kernel {m['kernel']}.  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".  ",
        f"Command: `{run['command']}`  ",
        f"wrk -t1 -c{o['connections']}, {o['rounds']} interleaved rounds × {o['duration']:g} s; "
        "medians over rounds; ratios are medians of per-round ratios to nginx in the same round. "
        "CPU per request is the proxy's own utime/stime (its whole process tree) over the "
        "requests wrk completed; 'other CPU' is the CPU time that processes other than the "
        "harness's (wrk, proxies, backend) and kernel threads used during a run (median over "
        "rounds): a noise indicator, ideally near 0.",
        "",
    ]
    for name, result in run["scenarios"].items():
        lines += [f"## {name}: {result['description']}", ""]
        check = result.get("precheck")
        if check:
            agree = (f"; fastgw and nginx picked the same target for "
                     f"{check['hash_agreement']} requests" if "hash_agreement" in check else "")
            lines += [f"Pre-check: {check['requests']} of the wrk script's requests through "
                      f"each proxy all answered 200 from one of the {check['targets']} targets "
                      f"(all {check['targets']} used), an unrouted path 404{agree}.", ""]
        lines += ["| proxy | req/s | × nginx | p50 ms | p99 ms | p99 × nginx | user µs/req "
                  "| sys µs/req | user × nginx | peak RSS MiB | errors | other CPU s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for proxy, row in result["summary"].items():
            if not row.get("rounds"):
                lines.append(f"| {proxy} | failed: {_one_line(row.get('error', '?'))} "
                             "| | | | | | | | | | |")
                continue
            lines.append(
                f"| {proxy} | {row['rps']:,.0f} | {_fmt(row.get('rps_vs_nginx'), '.2f')} "
                f"| {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
                f"| {_fmt(row.get('p99_vs_nginx'), '.2f')} | {row['user_us_per_req']:.1f} "
                f"| {row['sys_us_per_req']:.1f} | {_fmt(row.get('user_vs_nginx'), '.2f')} "
                f"| {row['peak_rss_mib']:.1f} | {row['errors']} | {row['other_cpu_s']:.2f} |")
        lines.append("")
    if run.get("idle"):
        lines += ["## idle-1k: RSS with 1,000 idle keep-alive client connections", "",
                  "| proxy | processes | RSS before MiB | RSS with connections MiB "
                  "| PSS with connections MiB | still open |",
                  "|---|---:|---:|---:|---:|---:|"]
        for proxy, row in run["idle"].items():
            if "error" in row:
                lines.append(f"| {proxy} | failed: {_one_line(row['error'])} | | | | |")
            else:
                pss = f"{row['pss_mib']:.1f}" if "pss_mib" in row else ""  # older runs lack it
                lines.append(f"| {proxy} | {row.get('processes', '')} "
                             f"| {row['rss_before_mib']:.1f} | {row['rss_mib']:.1f} | {pss} "
                             f"| {row['open']}/{row['connections']} |")
        lines.append("")
    if run.get("locust"):
        lc = run["locust"]
        lines += ["## locust: mixed traffic through fastgw", ""]
        if "error" in lc:
            lines.append(f"failed: {lc['error']}")
        else:
            lines += [f"{lc['users']} users, {lc['run_time']}, bench/locustfile.py. "
                      "(locust itself is the bottleneck here: this checks behaviour under "
                      "mixed traffic, not speed.)", "",
                      "| request | count | failures | median ms | p95 ms | p99 ms | req/s |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for row in lc["rows"]:
                lines.append(f"| {row['Type']} {row['Name']} | {row['Request Count']} "
                             f"| {row['Failure Count']} "
                             f"| {float(row['Median Response Time']):.2f} "
                             f"| {row['95%']} | {row['99%']} | {float(row['Requests/s']):.0f} |")
        lines.append("")
    checks = targets(run)
    if checks:
        lines += ["## Issue 3 targets", ""]
        mark = {True: "met", False: "**not met**", None: "not measured"}
        lines += [f"- {mark[met]}: {text}" for met, text in checks]
        lines += ["- parser targets (vs httptools and h11): measured by "
                  "`pytest bench/bench_parser.py --benchmark-only`, not by this harness", ""]
    for note in run.get("notes", []):
        lines.append(f"- note: {note}")
    return "\n".join(lines).rstrip() + "\n"


def chart(run: dict, path: Path) -> None:
    """Per scenario: req/s, and user + system CPU per request, one bar per proxy; idle RSS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [(n, r) for n, r in run["scenarios"].items()
                 if any(row.get("rounds") for row in r["summary"].values())]
    idle = {k: v for k, v in run.get("idle", {}).items() if "rss_mib" in v}
    rows = len(scenarios) + (1 if idle else 0)
    if not rows:
        return
    fig, axes = plt.subplots(rows, 2, figsize=(13, 3.2 * rows + 0.6), squeeze=False)
    for i, (name, result) in enumerate(scenarios):
        ok = [(p, r) for p, r in result["summary"].items() if r.get("rounds")]
        labels = [p for p, _ in ok][::-1]
        rps = [r["rps"] for _, r in ok][::-1]
        colors = ["tab:orange" if p.startswith("fastgw") else
                  "tab:gray" if p == "backend" else "tab:blue" for p in labels]
        ax = axes[i][0]
        ax.barh(labels, rps, color=colors)
        for y, (p, value) in enumerate(zip(labels, rps, strict=True)):
            ratio = result["summary"][p].get("rps_vs_nginx")
            ax.text(value, y, f" {value:,.0f}" + (f" ({ratio:.2f}×)" if ratio else ""),
                    va="center", fontsize=8)
        ax.set_title(f"{name}: requests/s (× nginx)", fontsize=10)
        ax.set_xlim(0, max(rps) * 1.35)
        ax = axes[i][1]
        user = [r["user_us_per_req"] for _, r in ok][::-1]
        system = [r["sys_us_per_req"] for _, r in ok][::-1]
        ax.barh(labels, user, color="tab:green", label="user")
        ax.barh(labels, system, left=user, color="tab:red", label="system")
        totals = [u + s for u, s in zip(user, system, strict=True)]
        ref = result["summary"].get("nginx", {})
        ref_total = (ref["user_us_per_req"] + ref["sys_us_per_req"]) if ref.get("rounds") \
            else statistics.median(totals)
        # the slowest peers would flatten everyone else: cut the axis at 6x nginx
        limit = min(max(totals), 6 * ref_total) * 1.3
        for y, (u, s) in enumerate(zip(user, system, strict=True)):
            label = f"{u:.0f} + {s:.0f}" + (" →" if u + s > limit else "")
            if u + s > 0.7 * limit:  # no room after the bar: write inside its end
                ax.text(min(u + s, limit) * 0.98, y, label, va="center", ha="right",
                        fontsize=8, color="white")
            else:
                ax.text(u + s, y, " " + label, va="center", fontsize=8)
        ax.set_title(f"{name}: proxy CPU µs per request (user + system)", fontsize=10)
        ax.set_xlim(0, limit)
        ax.legend(loc="upper right", fontsize=8)
    if idle:
        ax = axes[rows - 1][0]
        labels = list(idle)[::-1]
        values = [idle[p]["rss_mib"] for p in labels]
        ax.barh(labels, values, color=["tab:orange" if p.startswith("fastgw") else "tab:blue"
                                       for p in labels])
        ax.axvline(RSS_TARGET_MIB, color="black", linestyle="--", linewidth=1)
        for y, value in enumerate(values):
            ax.text(value, y, f" {value:.1f}", va="center", fontsize=8)
        ax.set_title(f"idle-1k: RSS MiB with 1,000 idle connections (target < {RSS_TARGET_MIB})",
                     fontsize=10)
        ax.set_xlim(0, max(values + [RSS_TARGET_MIB]) * 1.25)
        axes[rows - 1][1].axis("off")
    m = run["machine"]
    fig.suptitle(f"fastgw benchmark {run['started'][:10]} — {m['cpu']}, {m['cores']} cores, "
                 f"wrk -t1 -c{run['options']['connections']}, medians of "
                 f"{run['options']['rounds']} rounds × {run['options']['duration']:g} s",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(run: dict, out_dir: Path, stem: str, latest: str | None) -> list[Path]:
    """Raw JSON as ``<stem>.json``; markdown and chart as ``<latest>.md/.png/.json`` too."""
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"{stem}.json"
    raw.write_text(json.dumps(run, indent=1) + "\n")
    written = [raw]
    if latest:
        text = markdown(run)
        for suffix, content in ((".md", text), (".json", raw.read_text())):
            path = out_dir / f"{latest}{suffix}"
            path.write_text(content)
            written.append(path)
        png = out_dir / f"{latest}.png"
        chart(run, png)
        written.append(png)
    return written
