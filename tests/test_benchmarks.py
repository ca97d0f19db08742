"""The speed benchmark's smoke run (so it cannot rot): a small model frame, a few frames, no reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


def test_speed_benchmark_smoke_run(tmp_path):
    out = tmp_path / "speed.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--no-reference", "--json", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "matrix-product peak" in proc.stdout and "memory attention" in proc.stdout
    report = json.loads(out.read_text())
    runs = report["runs"]  # float32 and the default (float32 too on CPUs without fast bfloat16)
    assert len(runs) == 2 and runs[0]["precision"] == "float32"
    for r in runs:
        assert r["s_per_frame"] > 0 and r["reprop_s_per_frame"] > 0 and r["click_ms"] > 0
        assert set(r["components_ms"]) == {"encoder", "memory attention", "heads", "memory encoder"}
        assert r["gflop_per_frame"]["encoder"] > 0
        # the fast default agrees with float32 on this clip (identical when it is float32 itself)
        assert r["agreement_vs_float32"]["pixels"] >= 0.99 and r["agreement_vs_float32"]["presence_same"]
