"""Peak memory and speed of propagating one object through a long stack.

    python benchmarks/propagation_memory.py                      # 20 and 200 frames of 1024 x 1024
    python benchmarks/propagation_memory.py --frames 20 200 --model sam2.1_hiera_tiny.pt

Each run happens in a fresh subprocess so that its peak resident memory
(ru_maxrss) is its own. The stack is a lazy dask array of uint16 frames
(a moving bright disc on a noisy background), so the data itself never sits
in memory. Without --model the official sam2.1_hiera_tiny architecture is
built with random weights: memory and speed do not depend on the values.

Prints seconds per frame and peak RSS per run, and the ratio of peak RSS at
the largest to the smallest frame count (the engine's target: <= 1.3).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def make_stack(n: int, size: int):
    import dask
    import dask.array as da
    import numpy as np

    def frame(i):
        rng = np.random.default_rng(i)
        rr, cc = np.mgrid[:size, :size]
        centre = (size / 2 + size / 4 * np.sin(i / 15), size / 2 + size / 4 * np.cos(i / 20))
        disc = ((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2) < (size / 10) ** 2
        img = 200 + 1800 * disc + rng.normal(0, 50, (size, size))
        return np.clip(img, 0, 65535).astype(np.uint16)[None]

    return da.concatenate([da.from_delayed(dask.delayed(frame)(i), (1, size, size), np.uint16) for i in range(n)])


def run_once(frames: int, size: int, model: str | None, image_size: int, device: str | None) -> dict:
    import numpy as np
    import torch

    from napari_sam2 import load_model
    from napari_sam2.engine import Segmenter
    from napari_sam2.model import VARIANTS, Sam2Model

    if model:
        seg = load_model(model, device=device)
    else:
        import dataclasses

        torch.manual_seed(0)
        cfg = dataclasses.replace(VARIANTS["sam2.1_hiera_tiny"], image_size=image_size)
        from napari_sam2.loading import pick_device

        seg = Segmenter(Sam2Model(cfg).eval().to(pick_device(device)))
    stack = make_stack(frames, size)
    session = seg.open_stack(stack, cache_bytes=256 * 2**20)
    c = size / 2 + size / 4 * np.sin(0)
    session.set_prompts(0, 1, points=[[c, size / 2 + size / 4]], labels=[1])
    t0 = time.perf_counter()
    n = sum(1 for _ in session.propagate())
    elapsed = time.perf_counter() - t0
    labels = session.labels()
    # count labelled frames through file reads, so the check itself maps nothing into memory
    per_frame = size * size * labels.dtype.itemsize
    if isinstance(labels, np.memmap):
        labelled = sum(np.fromfile(labels.filename, labels.dtype, size * size, offset=f * per_frame).any()
                       for f in range(n))
    else:
        labelled = int((labels.reshape(n, -1).max(1) > 0).sum())
    session.close()
    return {
        "frames": n,
        "seconds_per_frame": elapsed / n,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "labelled_frames": int(labelled),
        "device": str(seg.device),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, nargs="+", default=[20, 200])
    p.add_argument("--size", type=int, default=1024, help="frame side in pixels")
    p.add_argument("--model", default=None, help="checkpoint path or name (default: random tiny weights)")
    p.add_argument("--image-size", type=int, default=1024, help="model input side for random weights")
    p.add_argument("--device", default=None)
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(run_once(args.child, args.size, args.model, args.image_size, args.device)))
        return 0
    results = []
    for n in args.frames:
        cmd = [sys.executable, __file__, "--child", str(n), "--size", str(args.size),
               "--image-size", str(args.image_size)]
        if args.model:
            cmd += ["--model", args.model]
        if args.device:
            cmd += ["--device", args.device]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        results.append(r)
        print(f"{r['frames']:5d} frames of {args.size}x{args.size}: {r['seconds_per_frame']:.3f} s/frame, "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB ({r['device']})", flush=True)
    if len(results) > 1:
        ratio = results[-1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
        print(f"peak RSS ratio {results[-1]['frames']} / {results[0]['frames']} frames: {ratio:.2f} (target <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
