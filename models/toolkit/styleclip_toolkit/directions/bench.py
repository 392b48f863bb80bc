"""Benchmark of `directions` (fs3) on random weights of any size, and of the official way for comparison.

    bash scripts/toolkit.sh -m styleclip_toolkit.directions.bench --resolution 1024 --clip vit-b32 --device cuda

Prints one JSON object. Per conv layer it times a few batches of the fast path (batched renders
resumed at the perturbed layer, CLIP on the results) and extrapolates to channels × images × 2
renders; `official_s` extrapolates one-image-at-a-time full renders (SingleChannel.py's loop, here
still with torch CLIP on the GPU). `--full` runs the whole fast computation instead and reports
its real time.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from styleclip_toolkit.clip_model import clip_from_state_dict, tiny_clip_state_dict, vit_b32_state_dict
from styleclip_toolkit.devices import PRECISIONS, precision
from styleclip_toolkit.directions import channel_relevance, embedder, layer_differences, sample_styles
from styleclip_toolkit.directions.synthesis_steps import SynthesisSteps
from styleclip_toolkit.pack import parse_channels
from styleclip_toolkit.stylegan2 import Generator, ffhq_channels, style_layout


def main(argv=None):
    p = argparse.ArgumentParser(prog="directions.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--widths", help="resolution:width list (default: FFHQ config-f widths, at most --max-width)")
    p.add_argument("--max-width", type=int, default=512)
    p.add_argument("--style-dim", type=int, default=512)
    p.add_argument("--clip", choices=("tiny", "vit-b32"), default="tiny")
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", type=int, default=3, help="timed batches per layer")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--full", action="store_true", help="run the whole computation")
    p.add_argument("--compare", action="store_true",
                   help="with --full: also run it in fp32 and report how close the fs3 rows are (cosine)")
    args = p.parse_args(argv)
    device = torch.device(args.device)

    if args.widths:
        channels = parse_channels(args.widths)
    else:
        channels = {r: min(c, args.max_width) for r, c in ffhq_channels(args.resolution).items()}
    torch.manual_seed(0)
    gen = Generator(args.resolution, args.style_dim, 2, channels).eval().to(device)
    sd = vit_b32_state_dict() if args.clip == "vit-b32" else tiny_clip_state_dict()
    clip = clip_from_state_dict(sd).to(device)
    embed = embedder(clip, device)
    layout = style_layout(gen)
    steps = SynthesisSteps(gen)
    result = {"device": str(torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"),
              "threads": torch.get_num_threads(), "resolution": args.resolution, "widths": channels,
              "clip": args.clip, "images": args.images, "batch": args.batch, "precision": args.precision,
              "convChannels": sum(e["channels"] for e in layout if not e["toRgb"])}

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        styles = sample_styles(gen, torch.zeros(args.style_dim, device=device), args.images, 5, 0.7)
        mean = [s.mean(0) for s in styles]
        std = [s.std(0) for s in styles]
    with torch.no_grad(), precision(args.precision, device):
        if args.full:
            sync()
            start = time.perf_counter()
            fs3 = channel_relevance(steps, embed, styles, mean, std, layout, args.batch)
            sync()
            result["full_s"] = round(time.perf_counter() - start, 3)
    if args.full and args.compare:
        with torch.no_grad():
            exact = channel_relevance(steps, embed, styles, mean, std, layout, args.batch)
        cos = (fs3 * exact).sum(1)
        result["cosine_vs_fp32"] = {"min": round(float(cos.min()), 5), "mean": round(float(cos.mean()), 5)}
    with torch.no_grad(), precision(args.precision, device):
        state = steps.initial_state(args.images)
        next(layer_differences(steps, embed, styles, state, 0, mean[0], std[0], args.batch))  # warm-up
        result["layers"], fast_s = [], 0.0
        for j, entry in enumerate(layout):
            if not entry["toRgb"]:
                run = layer_differences(steps, embed, styles, state, j, mean[j], std[j], args.batch)
                sync()
                start, renders = time.perf_counter(), 0
                for _, (rows, _d) in zip(range(args.batches), run):
                    renders += 2 * rows.numel()
                sync()
                rate = renders / (time.perf_counter() - start)
                layer_s = entry["channels"] * args.images * 2 / rate
                fast_s += layer_s
                result["layers"].append({"name": entry["name"], "channels": entry["channels"],
                                         "renders_per_s": round(rate, 1), "estimated_s": round(layer_s, 1)})
            state = steps.step(j, state, styles[j])
        # the official loop: one full render (grouped conv) + CLIP per image and sign
        one = [s[:1] for s in styles]
        embed(gen.forward_styles(one))
        sync()
        start = time.perf_counter()
        for _ in range(args.batches):
            embed(gen.forward_styles(one))
        sync()
        per_render = (time.perf_counter() - start) / args.batches
    total = result["convChannels"] * args.images * 2
    result.update({"renders": total, "fast_s": round(fast_s, 3), "official_s": round(per_render * total, 3),
                   "official_render_ms": round(per_render * 1000, 2),
                   "speedup": round(per_render * total / fast_s, 1)})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
