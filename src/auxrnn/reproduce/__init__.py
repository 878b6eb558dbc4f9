"""`auxrnn reproduce`: the paper's tables and figures as lists of runs, and our numbers beside the paper's.

    experiments.py  which cells make up each table or figure, with the paper's numbers
    runner.py       train or resume every unfinished cell (in this process or as subprocesses)
    report.py       the markdown table, the accuracy-curves PNG, publishing the small run files
"""
from auxrnn.reproduce.experiments import CPU_CELL, EXPERIMENTS, Cell, Experiment, get, select, select_any
from auxrnn.reproduce.report import RESULTS, collect, markdown_table, plot_curves, publish, update_results
from auxrnn.reproduce.runner import (DEFAULT_ROOT, DONE, cell_command, cell_dir, child_command, run_experiment,
                                     run_parallel)

__all__ = ["CPU_CELL", "DEFAULT_ROOT", "DONE", "EXPERIMENTS", "RESULTS", "Cell", "Experiment", "cell_command", "cell_dir",
           "child_command", "collect", "get", "markdown_table", "plot_curves", "publish", "run_experiment",
           "run_parallel", "select", "select_any", "update_results"]
