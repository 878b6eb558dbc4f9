"""`auxrnn presets [NAME]`: every shipped preset with its one-line description, or one preset resolved."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list the presets, or print one resolved",
                       description="Without NAME: every preset shipped with auxrnn and the first line of its "
                                   "header. With NAME (a preset or a YAML file): its chain of bases and every "
                                   "key it resolves to, as `auxrnn train --preset NAME` would train it.")
    p.add_argument("name", nargs="?", default=None, metavar="NAME", help="a preset name or a YAML file")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def preset_description(name: str) -> str:
    """The first line of the preset's header comment (every shipped preset starts with one)."""
    from auxrnn.train.config import preset_path

    first = preset_path(name).read_text().splitlines()[:1]
    return first[0].lstrip("#").strip() if first and first[0].startswith("#") else ""


def chain_line(name: str) -> str:
    """`# preset NAME <- A <- B` (nearest base first): what `train --check` and `presets NAME` print first."""
    from auxrnn.train.config import preset_layers

    chain = [Path(path.name).stem for path, _ in reversed(preset_layers(name))]
    bases = " (each lists what differs from its base)" if len(chain) > 1 else " (no base)"
    return "# preset " + " <- ".join(chain) + bases + "\n"


def run(args) -> int:
    from auxrnn.train.config import build_config, dump_yaml, list_presets

    if args.name is None:
        names = list_presets()
        width = max(map(len, names))
        for name in names:
            print(f"{name:<{width}}  {preset_description(name)}")
        print(f"\n{len(names)} presets: `auxrnn presets NAME` prints one resolved, "
              "`auxrnn train --preset NAME` trains it.")
        return 0
    cfg = build_config(args.name)
    description = preset_description(args.name)
    print((f"# {description}\n" if description else "") + chain_line(args.name) + dump_yaml(cfg), end="")
    return 0
