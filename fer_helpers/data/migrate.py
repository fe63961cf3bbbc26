"""Renamed models keep their saved runs: each result folder moves to the name and key it has under the new name.

A result's folder is `<model>-<key>` and its key hashes the model's name (a HOG variant's configuration holds the
name too), so a renamed model would no longer find its runs and would train them again. `python -m
fer_helpers.data.migrate` applies every rename in RENAMED to the run folders under runs/ (or to the ones it is given).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from fer_helpers.core.paths import REPO
from fer_helpers.data.results import RESULT_FILE, result_dir, run_key

# Old name -> new name of every renamed model.
RENAMED = {
    # HOG variants named for what they change; the Nyström one is a linear classifier of kernel features.
    "hog_extended": "hog_nystroem",
    "hog_extended_balanced": "hog_nystroem_balanced",
    "hog_extended_fine": "hog_fine_cells",
    "hog_extended_multiscale": "hog_multiscale",
}


def rename_model_runs(run_root: str | Path, old: str, new: str) -> list[tuple[Path, Path]]:
    """Move every saved result of model `old` in run_root to model `new`: its key, folder and result.json.

    Refuses (before moving anything) to overwrite a folder, or to move a result whose key is not the one its
    stored configuration gives; a second call finds nothing left to move. Returns the (from, to) folders.
    """
    moves = []
    for result_file in sorted((Path(run_root) / "results").glob(f"{old}-*/{RESULT_FILE}")):
        meta = json.loads(result_file.read_text(encoding="utf-8"))
        if meta["model"] not in (old, new):  # another model whose name starts with `old-`
            continue
        config = meta["config"]
        if config.get("name") == old:
            config = config | {"name": new}
        # A result.json that says `new` was rewritten by a move cut short: only its folder is left to move.
        if run_key(meta["model"], meta["config"], meta["data_sha256"]) != meta["key"]:
            raise ValueError(
                f"{result_file}: the stored configuration does not give the folder's key "
                f"{meta['key']}; cannot work out its key under the name {new!r}"
            )
        key = run_key(new, config, meta["data_sha256"])
        target = result_dir(run_root, new, key)
        if target.exists():
            raise FileExistsError(f"cannot move {result_file.parent} to {target}: it exists")
        moves.append((result_file.parent, target, meta | {"model": new, "config": config, "key": key}))
    for source, target, meta in moves:
        tmp = source / f".{RESULT_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(tmp, source / RESULT_FILE)
        os.rename(source, target)
    return [(source, target) for source, target, _ in moves]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fer_helpers.data.migrate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "run_roots", nargs="*", type=Path, help="run folders (holding results/); default: every one under runs/"
    )
    args = parser.parse_args(argv)
    roots = args.run_roots or sorted(p.parent for p in (REPO / "runs").glob("*/results"))
    for root in roots:
        for old, new in RENAMED.items():
            for source, target in rename_model_runs(root, old, new):
                print(f"{source} -> {target.name}")


if __name__ == "__main__":
    main()
