"""`auxrnn reproduce`: run (or resume) every cell of one paper table/figure and tabulate the results."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from auxrnn.reproduce import DEFAULT_ROOT, EXPERIMENTS, RESULTS

    p = sub.add_parser("reproduce", help="run a paper table/figure and write our numbers beside the paper's",
                       description="Experiments: " + ", ".join(EXPERIMENTS))
    p.add_argument("name", choices=list(EXPERIMENTS), metavar="NAME", help=", ".join(EXPERIMENTS))
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="extra overrides for every cell (e.g. train.max_minutes=9 for a GPU slice)")
    p.add_argument("--cells", default=None, help="comma-separated cell ids or globs (default: all)")
    p.add_argument("--device", default=None, help="train.device for every cell (cpu, cuda, cuda:N)")
    p.add_argument("--out", type=Path, default=DEFAULT_ROOT, help=f"root of the run folders (default {DEFAULT_ROOT})")
    p.add_argument("--results", type=Path, default=RESULTS, help=f"markdown file to update (default {RESULTS})")
    p.add_argument("--dry-run", action="store_true", help="list the cells and their exact commands; run nothing")
    p.add_argument("--collect", action="store_true", help="only tabulate the existing run folders; run nothing")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args) -> int:
    from auxrnn import reproduce
    from auxrnn.cli.train_cmd import setup_logging

    exp = reproduce.get(args.name)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()] if args.cells else None
    extra = reproduce.parse_extra(args.overrides)
    if args.device:
        extra["train.device"] = args.device
    chosen = reproduce.select(exp, cells)
    if args.dry_run:
        print(f"# {exp.title}: {len(chosen)} cell(s)")
        for cell in chosen:
            folder = reproduce.cell_dir(exp, cell, args.out)
            print(f"{cell.id}\t{cell.row}{' ' + cell.column if cell.column else ''}\tpaper {cell.paper}\t{folder}")
            print(f"  {reproduce.cell_command(exp, cell, args.out, extra)}")
        return 0
    setup_logging()
    status = 0
    if not args.collect:
        records = reproduce.run_experiment(args.name, cells, args.out, extra)
        if any(r["status"] not in ("finished",) for r in records):
            status = 1
    table = reproduce.markdown_table(args.name, args.out)
    reproduce.update_results(args.results, args.name, table)
    print(table, end="")
    print(f"updated {args.results}")
    return status
