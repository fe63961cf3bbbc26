"""How fast the synthetic faces are made: CPU milliseconds per face (the stand-in for FER-2013 where it is absent).

Usage: python benchmarks/bench_synthetic.py
"""

from __future__ import annotations

import time

from fer_helpers.data.synthetic import make_synthetic_fer


def run(n_faces: int = 2000) -> dict:
    """CPU time per synthetic face, after a small warm-up."""
    make_synthetic_fer(10, 0, 0)
    start = time.process_time()
    make_synthetic_fer(n_faces, 0, 0, seed=2)
    seconds = time.process_time() - start
    return {"faces": n_faces, "cpu_seconds": round(seconds, 3), "cpu_ms_per_face": round(1000 * seconds / n_faces, 3)}


if __name__ == "__main__":
    result = run()
    print(f"{result['faces']} synthetic faces in {result['cpu_seconds']} s of CPU: {result['cpu_ms_per_face']} ms each")
