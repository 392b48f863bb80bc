"""GPU timings of the exported generator formulation (the same maths as the pack's ONNX graphs).

onnxruntime-node's CUDA execution provider is downloaded by its install script, which cannot run
offline; this script measures the identical graph (styleclip_toolkit.export.SynthesisGraph) in
PyTorch CUDA instead, with FFHQ config-f shapes and random weights:

    bash scripts/toolkit.sh scripts/gpu_bench.py --resolution 1024 --batches 1,8,32

Prints one JSON object: median ms for bare synthesis and for a cached global edit
(s + α·ΔS, then synthesis) at each batch size, fp32 (TF32 off) and TF32.
"""
import argparse
import json
import statistics
import time

import torch

from styleclip_toolkit.export import SynthesisGraph, ToStylesGraph
from styleclip_toolkit.stylegan2 import Generator, ffhq_channels


def median_ms(fn, repeats):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=1024)
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    device = torch.device("cuda")
    gen = Generator(args.resolution, 512, 8, ffhq_channels(args.resolution)).eval().to(device)
    synthesis, to_styles = SynthesisGraph(gen).to(device), ToStylesGraph(gen).to(device)
    result = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__,
              "resolution": args.resolution, "runs": []}
    with torch.no_grad():
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            for batch in [int(b) for b in args.batches.split(",")]:
                wplus = torch.randn(batch, gen.n_latent, 512, device=device)
                styles = to_styles(wplus)
                delta = torch.randn(styles.shape[1], device=device)
                synth_ms = median_ms(lambda: synthesis(styles), args.repeats)
                edit_ms = median_ms(lambda: synthesis(styles + 4.1 * delta), args.repeats)
                result["runs"].append({"tf32": tf32, "batch": batch, "synthesis_ms": synth_ms,
                                       "global_edit_ms": edit_ms,
                                       "images_per_s": round(batch * 1000 / edit_ms, 1),
                                       "max_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
