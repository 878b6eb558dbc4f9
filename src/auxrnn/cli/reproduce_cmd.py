"""`auxrnn reproduce`: run (or resume) every cell of one paper table/figure and tabulate the results."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from auxrnn.reproduce import DEFAULT_ROOT, EXPERIMENTS, RESULTS

    p = sub.add_parser("reproduce", help="run a paper table/figure and write our numbers beside the paper's",
                       description="Experiments: " + ", ".join(EXPERIMENTS))
    p.add_argument("name", metavar="NAME[,NAME...]",
                   help="one experiment, or several separated by commas (one pool of cells with --parallel): "
                        + ", ".join(EXPERIMENTS))
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="extra overrides for every cell (e.g. train.max_minutes=9 for a GPU slice)")
    p.add_argument("--cells", default=None, help="comma-separated cell ids or globs (default: all)")
    p.add_argument("--device", default=None, help="train.device for every cell (cpu, cuda, cuda:N)")
    p.add_argument("--out", type=Path, default=DEFAULT_ROOT, help=f"root of the run folders (default {DEFAULT_ROOT})")
    p.add_argument("--results", type=Path, default=None,
                   help=f"markdown file to update (default: OUT/{RESULTS}; the project's own: docs/results.md)")
    p.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="run up to N unfinished cells at once, each an `auxrnn train` subprocess writing "
                        "<cell folder>/stdout.log (default 1: one after another, in this process)")
    p.add_argument("--gpus", default=None, metavar="ID[,ID...]",
                   help="with --parallel N: the GPUs (CUDA_VISIBLE_DEVICES entries) the GPU cells are spread over, "
                        "round-robin, one per child (default: every visible GPU)")
    p.add_argument("--retry-oom", action="store_true",
                   help="run cells whose recorded result is out-of-memory again (default: keep the result)")
    p.add_argument("--dry-run", action="store_true", help="list the cells and their exact commands; run nothing")
    p.add_argument("--collect", action="store_true", help="only tabulate the existing run folders; run nothing")
    p.add_argument("--publish", type=Path, default=None, metavar="DIR",
                   help="also copy each cell's config.yaml, summary.json and metrics.jsonl (no checkpoints) to "
                        "DIR/<experiment>/<cell>/ and the curves PNG to DIR/<experiment>.png")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args) -> int:
    from auxrnn import reproduce
    from auxrnn.cli.train_cmd import setup_logging
    from auxrnn.train.config import parse_overrides

    results = args.results if args.results is not None else args.out / reproduce.RESULTS
    names = [n.strip() for n in args.name.split(",") if n.strip()]
    exps = [reproduce.get(n) for n in names]
    if args.parallel < 1:
        raise ValueError(f"--parallel {args.parallel}: must be >= 1")
    gpus = None
    if args.gpus is not None:
        gpus = [g.strip() for g in args.gpus.split(",")]
        if not all(gpus):
            raise ValueError(f"--gpus {args.gpus!r}: give comma-separated GPU ids, e.g. --gpus 0,1")
        if args.parallel < 2:
            raise ValueError("--gpus spreads the cells of --parallel N (N >= 2) over GPUs; to run one cell at a "
                             "time on one GPU, use --device cuda:N")
    cells = [c.strip() for c in args.cells.split(",") if c.strip()] if args.cells else None
    extra = parse_overrides(args.overrides)
    if args.device:
        extra["train.device"] = args.device
    chosen = {exp.name: reproduce.select_any(exp, cells, exps) for exp in exps}
    if args.dry_run:
        for exp in exps:
            print(f"# {exp.title}: {len(chosen[exp.name])} cell(s)")
            for cell in chosen[exp.name]:
                folder = reproduce.cell_dir(exp, cell, args.out)
                print(f"{cell.id}\t{cell.row}{' ' + cell.column if cell.column else ''}\tpaper {cell.paper}\t{folder}")
                print(f"  {reproduce.cell_command(exp, cell, args.out, extra)}")
        return 0
    setup_logging()
    status = 0
    if not args.collect:
        if args.parallel > 1:
            pool = [(exp, c) for exp in exps for c in chosen[exp.name]]
            records = reproduce.run_parallel(pool, args.out, extra, args.parallel, retry_oom=args.retry_oom,
                                             gpus=gpus)
        else:
            records = []
            for exp in exps:
                if not chosen[exp.name]:
                    continue
                records += reproduce.run_experiment(exp.name, [c.id for c in chosen[exp.name]], args.out, extra,
                                                    retry_oom=args.retry_oom)
                if records and records[-1]["status"] in ("signal", "time_budget"):
                    break
            done = {(r["experiment"], r["cell"]) for r in records}
            records += [{"experiment": e.name, "cell": c.id, "status": "not started"} for e in exps
                        for c in chosen[e.name] if (e.name, c.id) not in done]
        if any(r["status"] not in reproduce.DONE for r in records):
            status = 1
    for exp in exps:
        table = reproduce.markdown_table(exp.name, args.out)
        reproduce.update_results(results, exp.name, table)
        print(table, end="")
        png = reproduce.plot_curves(exp.name, args.out)
        if png is not None:
            print(f"curves: {png}")
        if args.publish is not None:
            files = reproduce.publish(exp.name, args.out, args.publish)
            if png is not None:
                reproduce.plot_curves(exp.name, args.out, args.publish / png.name)
            print(f"published {len(files)} run files to {args.publish / exp.name}")
    print(f"updated {results}")
    return status
