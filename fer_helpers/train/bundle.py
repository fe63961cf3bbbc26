"""What travels between the study and a training host: a slim source tree out, archives of run folders back.

A GPU host receives the package and the data, not the committed results: `slim_paths` lists the tracked files a
training host needs (the package, the build files, each saved run's result.json so that saved runs are
skipped), which must fit `TRAVEL_LIMIT_BYTES` with fer2013.zip beside it. Results come back as at most
`MAX_PARTS` gzipped tar files of at most `PART_LIMIT_BYTES` each (`pack_runs`): every run's predictions,
history and metrics, and weights only for the runs worth keeping. `unpack_runs` checks each archived run
folder (it must load as a `RunResult`) before it moves it into a run folder; it never overwrites a saved run, and
a finished run takes the place of the same run left unfinished there (an interrupted run's checkpoints).
"""

from __future__ import annotations

import fnmatch
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import NamedTuple

from fer_helpers.core.files import atomic_path
from fer_helpers.data.results import RESULT_FILE, RunResult

MIB = 1024 * 1024
PART_LIMIT_BYTES = 16 * MIB - 64 * 1024  # each file that comes back; a margin for the tar and gzip framing
MAX_PARTS = 7  # the eighth file that may come back is the command's log
TRAVEL_LIMIT_BYTES = 64 * MIB  # the source tree and the data together
PART_NAME = "runs-{:02d}.tar.gz"
MANIFEST = "manifest.json"
WEIGHTS_NAME = "weights.safetensors"
# Tracked paths a training host does not need (fnmatch patterns on repository-relative paths).
NOT_FOR_TRAINING = (
    "models/*",
    "reports/*",
    "notebooks/*",
    "tests/*",
    "benchmarks/*",
    "data/*",
    "runs/*/results/*/predictions.npz",
    "runs/*/results/*/history.csv",
    "runs/*/results/*/weights.safetensors",
)


class BundleError(ValueError):
    """An archive or tree that cannot travel or be unpacked; the message names the file and why."""


def tracked_files(repo: str | Path) -> list[str]:
    """The repository's tracked files (paths relative to it)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p]


def slim_paths(repo: str | Path) -> list[str]:
    """The tracked files a training host needs (everything but NOT_FOR_TRAINING), relative to the repository."""
    return [p for p in tracked_files(repo) if not any(fnmatch.fnmatch(p, pat) for pat in NOT_FOR_TRAINING)]


def slim_size(repo: str | Path) -> int:
    """Bytes of the slim tree."""
    return sum((Path(repo) / p).stat().st_size for p in slim_paths(repo) if (Path(repo) / p).exists())


def _run_members(run_dir: Path, keep_weights: bool) -> list[Path]:
    return sorted(
        p
        for p in run_dir.rglob("*")
        if p.is_file() and (keep_weights or p.name != WEIGHTS_NAME) and "checkpoints" not in p.parts
    )


def pack_runs(
    run_dirs: dict[Path, bool], out_dir: str | Path, extra_files: dict[str, bytes] | None = None
) -> list[Path]:
    """Write run folders ({run_dir: keep_weights}) as at most MAX_PARTS archives under out_dir; returns them.

    Each run folder stays whole inside one part. Parts are written to temporary names and renamed, and parts
    left from an earlier call are removed, so out_dir always holds one complete, consistent set.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {d: sum(p.stat().st_size for p in _run_members(d, keep)) for d, keep in run_dirs.items()}
    too_big = [str(d) for d, size in sizes.items() if size > PART_LIMIT_BYTES]
    if too_big:
        raise BundleError(f"run folder(s) larger than one archive part ({PART_LIMIT_BYTES:,} bytes): {too_big}")
    parts: list[list[Path]] = []
    used: list[int] = []
    for run_dir in sorted(run_dirs, key=lambda d: -sizes[d]):  # first fit, largest first
        lane = next((i for i, u in enumerate(used) if u + sizes[run_dir] <= PART_LIMIT_BYTES), None)
        if lane is None:
            parts.append([])
            used.append(0)
            lane = len(parts) - 1
        parts[lane].append(run_dir)
        used[lane] += sizes[run_dir]
    if not parts:
        parts = [[]]
    if len(parts) > MAX_PARTS:
        raise BundleError(f"{len(parts)} archive parts needed, at most {MAX_PARTS} can travel")
    written = []
    for index, members in enumerate(parts):
        path = out_dir / PART_NAME.format(index)
        with atomic_path(path) as tmp:
            with tarfile.open(tmp, "w:gz") as tar:
                manifest = {"runs": [d.name for d in members]}
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
                for name, blob in (extra_files or {}).items() if index == 0 else ():
                    _add_bytes(tar, name, blob)
                for run_dir in members:
                    for file in _run_members(run_dir, run_dirs[run_dir]):
                        tar.add(file, arcname=f"{run_dir.name}/{file.relative_to(run_dir)}")
            if tmp.stat().st_size > PART_LIMIT_BYTES + 64 * 1024:
                raise BundleError(f"{path.name} came out at {tmp.stat().st_size:,} bytes, over the limit")
        written.append(path)
    for stale in out_dir.glob(PART_NAME.replace("{:02d}", "*")):
        if stale not in written:
            stale.unlink()
    return written


def _add_bytes(tar: tarfile.TarFile, name: str, blob: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    tar.addfile(info, io.BytesIO(blob))


class Unpacked(NamedTuple):
    """What `unpack_runs` did with each archived run folder."""

    added: list[Path]  # moved into the run folder
    present: list[str]  # saved there already, kept as it was
    replaced: list[str]  # left unfinished there (checkpoints, no result): the archived run took its place


def unpack_runs(archives: list[str | Path], run_root: str | Path) -> Unpacked:
    """Move the run folders of archives into run_root/results.

    Every folder is checked (it must load as a RunResult) before any is moved; a bad archive changes nothing.
    A saved run is never overwritten; an unfinished one (an interrupted run's checkpoints, with no result) is
    replaced by the finished run, which supersedes it.
    """
    results = Path(run_root) / "results"
    with tempfile.TemporaryDirectory(prefix=".unpack-", dir=_existing_parent(results)) as tmp:
        staging = Path(tmp)
        for archive in archives:
            archive = Path(archive)
            if not archive.is_file():
                raise BundleError(f"{archive}: no such archive")
            try:
                with tarfile.open(archive, "r:gz") as tar:
                    tar.extractall(staging, filter="data")
            except (tarfile.TarError, OSError, EOFError) as err:
                raise BundleError(f"{archive}: not a readable run archive ({err})") from err
        folders = sorted(p for p in staging.iterdir() if p.is_dir())
        for folder in folders:
            if not (folder / RESULT_FILE).exists():
                raise BundleError(f"{folder.name} (in {', '.join(map(str, archives))}): no {RESULT_FILE}")
            try:
                RunResult.load(folder)
            except (OSError, ValueError, KeyError) as err:
                raise BundleError(f"{folder.name}: its result does not load ({err})") from err
        results.mkdir(parents=True, exist_ok=True)
        done = Unpacked([], [], [])
        for folder in folders:
            target = results / folder.name
            if (target / RESULT_FILE).exists():
                done.present.append(folder.name)
                continue
            if target.exists():
                shutil.rmtree(target)
                done.replaced.append(folder.name)
            shutil.move(str(folder), target)
            target.chmod(0o755)
            done.added.append(target)
    return done


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def heavy_paths(repo: str | Path) -> list[str]:
    """The tracked files a training host does not need (what the slim branch removes)."""
    keep = set(slim_paths(repo))
    return [p for p in tracked_files(repo) if p not in keep]


def main(argv: list[str] | None = None) -> int:
    """`python -m fer_helpers.train.bundle heavy|size [DATA ...]`: the files the slim tree leaves out, or its size with DATA."""
    import argparse
    import sys

    from fer_helpers.core.paths import REPO

    parser = argparse.ArgumentParser(prog="python -m fer_helpers.train.bundle", description=main.__doc__)
    parser.add_argument("what", choices=["heavy", "size"])
    parser.add_argument("data", nargs="*", help="with size: the data files that travel beside the tree")
    args = parser.parse_args(argv)
    if args.what == "heavy":
        sys.stdout.write("".join(p + "\0" for p in heavy_paths(REPO)))
        return 0
    tree = slim_size(REPO)
    data = sum(Path(path).stat().st_size for path in args.data if Path(path).exists())
    total = tree + data
    print(
        f"slim tree {tree / MIB:.1f} MiB + data {data / MIB:.1f} MiB = {total / MIB:.1f} MiB "
        f"of {TRAVEL_LIMIT_BYTES / MIB:.0f} MiB"
    )
    return 0 if total <= TRAVEL_LIMIT_BYTES else 1


if __name__ == "__main__":
    raise SystemExit(main())
