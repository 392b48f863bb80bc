"""Measures `optimize` steps per second on a pack (one JSON object on stdout).

    bash scripts/toolkit.sh -m styleclip_toolkit.optimize_bench --pack PACK [--steps 20] [--device cuda]
        [--precision tf32] [--id]

A step is one official iteration: render W+, CLIP loss (and ID loss with --id), backward, Adam.
--id uses the pack's ArcFace, or a random full-size IR-SE-50 when the pack has none (random
weights cost the same). Warm-up steps (not timed) come first.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main(argv=None):
    from styleclip_toolkit.convert_identity import build_backbone, random_identity_state_dict
    from styleclip_toolkit.devices import PRECISIONS, pick_device, precision
    from styleclip_toolkit.optim_losses import IdLoss
    from styleclip_toolkit.optimize import build
    from styleclip_toolkit.pack import read_pack_json

    p = argparse.ArgumentParser(prog="optimize_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--pack", required=True)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--id", action="store_true", help="include the ID loss (id_lambda 0.005)")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    pack_has_id = bool(read_pack_json(args.pack).get("identity"))
    with precision(args.precision, device):
        opt = build(args.pack, "a person with purple hair", seed=0, with_identity=args.id and pack_has_id,
                    device=device)
        if args.id and not pack_has_id:
            config = {"num_layers": 50, "mode": "ir_se", "input_size": 112, "widths": [64, 128, 256, 512],
                      "embedding_size": 512, "affine": True}
            facenet = build_backbone(config)
            facenet.load_state_dict(random_identity_state_dict())
            facenet = facenet.eval().requires_grad_(False).to(device)
            with torch.no_grad():
                opt.id_loss = IdLoss(facenet, opt.gen(opt.w0))
        id_lambda = 0.005 if args.id else 0.0
        opt.run(args.warmup, 0.1, id_lambda=id_lambda)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        opt.run(args.steps, 0.1, id_lambda=id_lambda)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(json.dumps({"pack": str(args.pack), "resolution": opt.gen.size, "device": name,
                      "threads": torch.get_num_threads(), "precision": args.precision, "id": args.id,
                      "steps": args.steps, "ms_per_step": round(1000 * seconds / args.steps, 1),
                      "steps_per_s": round(args.steps / seconds, 2),
                      "official_300_steps_s": round(300 * seconds / args.steps, 1)}))


if __name__ == "__main__":
    main()
