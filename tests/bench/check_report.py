#!/usr/bin/env python3
"""check_report.py - the bench's reports say the same thing.

usage: check_report.py RUNS.json TABLE.txt [RUNS.csv] [PLOT.svg]

- the JSON is valid and every run has the field names of docs/design.md (Bench), with
  numbers where numbers belong;
- every run of the JSON is a line of the table, with the same values at the
  table's precision, in the same order;
- the CSV (if given) has one row per run with the same values;
- the SVG (if given) is well-formed XML with a bar per run (a point per
  run with a strategy: the shoot-out's plot);
- every run has `strategy` (null or a name), `wasted_ids` (null or an
  integer) and `at_risk_ids`, shown in the table's last columns.
Prints what differs and exits 1; exits 0 when all agree.
"""
import csv
import json
import sys
import xml.etree.ElementTree as ET

DESIGN = ["uri", "store", "workload", "metaprime", "batch", "threads",
          "rtt_ms", "ids", "wall_s", "ids_per_s", "roundtrips_store",
          "roundtrips_engine", "waited_calls", "latency_ns", "unused_ids"]
INTS = ["metaprime", "batch", "threads", "ids", "roundtrips_engine",
        "waited_calls", "unused_ids"]

problems = []


def want(cond, what):
    if not cond:
        problems.append(what)


def table_rows(path):
    """The run lines of the table: the columns under the header."""
    rows = []
    with open(path) as f:
        lines = f.read().splitlines()
    header = None
    for line in lines:
        tok = line.split()
        if tok[:3] == ["store", "workload", "run"]:
            header = tok
            continue
        if header and len(tok) >= len(header) and tok[2] in ("batched", "baseline"):
            rows.append(dict(zip(header, tok)))
    want(header is not None, "the table has no header line")
    return rows


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    with open(sys.argv[1]) as f:
        doc = json.load(f)  # invalid JSON raises: the check fails
    runs = doc.get("runs")
    want(isinstance(runs, list) and runs, "no runs in the JSON")
    runs = runs or []
    for i, r in enumerate(runs):
        for k in DESIGN:
            want(k in r, f"run {i}: no field '{k}'")
        for k in INTS:
            want(isinstance(r.get(k), int), f"run {i}: '{k}' is not an integer")
        for k in ("rtt_ms", "wall_s", "ids_per_s"):
            want(isinstance(r.get(k), (int, float)), f"run {i}: '{k}' is not a number")
        rs = r.get("roundtrips_store")
        want(rs is None or isinstance(rs, int), f"run {i}: roundtrips_store")
        lat = r.get("latency_ns", {})
        for k in ("p50", "p99", "p999"):
            want(isinstance(lat.get(k), int), f"run {i}: latency_ns.{k}")
        want("strategy" in r and (r["strategy"] is None or
                                  isinstance(r["strategy"], str)),
             f"run {i}: no 'strategy' (null or a name)")
        w = r.get("wasted_ids", "missing")
        want(w is None or isinstance(w, int), f"run {i}: 'wasted_ids'")
        want(isinstance(r.get("at_risk_ids"), int), f"run {i}: 'at_risk_ids'")
        if r.get("workload") == "hotpath":
            want(isinstance(r.get("atomic_ids_per_s"), (int, float)),
                 f"run {i}: hotpath without atomic_ids_per_s")

    rows = table_rows(sys.argv[2])
    want(len(rows) == len(runs), f"{len(rows)} table lines for {len(runs)} runs")
    for i, (r, t) in enumerate(zip(runs, rows)):
        def same(col, value):
            want(t.get(col) == value,
                 f"run {i}: table {col} '{t.get(col)}', JSON says '{value}'")
        same("store", r["store"])
        same("workload", r["workload"])
        same("run", "batched" if r["metaprime"] else "baseline")
        for col, key in (("batch", "batch"), ("thr", "threads"), ("ids", "ids"),
                         ("rt_engine", "roundtrips_engine"),
                         ("waited", "waited_calls"), ("unused", "unused_ids")):
            same(col, str(r[key]))
        rs = r["roundtrips_store"]
        agree = rs is None or rs == r["roundtrips_engine"]
        same("rt_store", "-" if rs is None else f"{rs}{'' if agree else '!'}")
        same("rtt_ms", f"{r['rtt_ms']:.3f}")
        same("wall_s", f"{r['wall_s']:.6f}")
        # the table rounds the full number, the JSON has 3 decimals: a
        # half may round either way
        want(abs(float(t.get("ids_per_s", "nan")) - r["ids_per_s"]) <= 0.501,
             f"run {i}: table ids_per_s '{t.get('ids_per_s')}', JSON says "
             f"'{r['ids_per_s']}'")
        for k in ("p50", "p99", "p999"):
            same(f"{k}_us", f"{r['latency_ns'][k] / 1000:.3f}")
        same("wasted", "-" if r["wasted_ids"] is None else str(r["wasted_ids"]))
        same("at_risk", str(r["at_risk_ids"]))
        if any(x.get("strategy") for x in runs):
            same("strategy", r["strategy"] or "-")

    if len(sys.argv) > 3:
        with open(sys.argv[3], newline="") as f:
            crows = list(csv.DictReader(f))
        want(len(crows) == len(runs), f"{len(crows)} CSV rows for {len(runs)} runs")
        for i, (r, c) in enumerate(zip(runs, crows)):
            for k in ("uri", "store", "workload"):
                want(c.get(k) == r[k], f"CSV row {i}: {k} '{c.get(k)}' != '{r[k]}'")
            for k in INTS:
                want(c.get(k) == str(r[k]), f"CSV row {i}: {k} '{c.get(k)}' != {r[k]}")
            rs = r["roundtrips_store"]
            want(c.get("roundtrips_store") == ("" if rs is None else str(rs)),
                 f"CSV row {i}: roundtrips_store")
            for k in ("p50", "p99", "p999"):
                want(c.get(f"{k}_ns") == str(r["latency_ns"][k]), f"CSV row {i}: {k}_ns")

    if len(sys.argv) > 4:
        root = ET.parse(sys.argv[4]).getroot()
        want(root.tag.endswith("svg"), "the plot is not an <svg>")
        mark = "circle" if any(r.get("strategy") for r in runs) else "rect"
        bars = [e for e in root.iter() if e.tag.endswith(mark) and e.find(
            "{http://www.w3.org/2000/svg}title") is not None]
        shown = [r for r in runs if mark == "rect" or r["wasted_ids"] is not None]
        want(len(bars) >= len(shown), f"{len(bars)} {mark}s for {len(shown)} runs")

    for p in problems:
        print("check_report:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
