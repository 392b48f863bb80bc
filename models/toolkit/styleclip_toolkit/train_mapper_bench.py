"""Measures `train-mapper` steps per second on a pack (one JSON object on stdout).

    bash scripts/toolkit.sh -m styleclip_toolkit.train_mapper_bench --pack PACK [--steps 10] [--batch 2]
        [--device cuda] [--precision tf32] [--no-id] [--optimizer ranger|adam]

A step is one official iteration: render G(w) (no grad) and G(w + 0.1·M(w)), CLIP loss, ID loss
(unless --no-id), latent MSE, backward, Ranger/Adam on the mapper. The ID loss uses the pack's
ArcFace, or a random full-size IR-SE-50 when the pack has none (random weights cost the same).
Latents are sampled (a few more than one batch). Warm-up steps (not timed) come first.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main(argv=None):
    from styleclip_toolkit.convert_identity import build_backbone, random_identity_state_dict
    from styleclip_toolkit.devices import PRECISIONS, pick_device, precision
    from styleclip_toolkit.pack import read_pack_json
    from styleclip_toolkit.train_mapper import LEVEL_NAMES, OPTIMIZERS, build

    p = argparse.ArgumentParser(prog="train_mapper_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--pack", required=True)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="ranger")
    p.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--no-id", action="store_true", help="without the ID loss (id_lambda 0)")
    p.add_argument("--no-fine", action="store_true", help="without the fine mapper")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    meta = read_pack_json(args.pack)
    pack_has_id = bool(meta.get("identity"))
    levels = {level: not (level == "fine" and args.no_fine) for level in LEVEL_NAMES}
    with precision(args.precision, device):
        tr = build(args.pack, "a person with purple hair", levels, batch=args.batch, optimizer=args.optimizer,
                   id_lambda=0.1 if pack_has_id and not args.no_id else 0.0, dataset_size=args.batch * 4,
                   device=device)
        if not args.no_id and not pack_has_id:
            config = {"num_layers": 50, "mode": "ir_se", "input_size": 112, "widths": [64, 128, 256, 512],
                      "embedding_size": 512, "affine": True}
            facenet = build_backbone(config)
            facenet.load_state_dict(random_identity_state_dict())
            tr.facenet = facenet.eval().requires_grad_(False).to(device)
            tr.lambdas["id"] = 0.1
        tr.run(args.warmup)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        tr.run(args.warmup + args.steps)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rate = args.steps / seconds
    print(json.dumps({"pack": str(args.pack), "resolution": tr.gen.size, "device": name,
                      "threads": torch.get_num_threads(), "precision": args.precision, "batch": args.batch,
                      "optimizer": args.optimizer, "id": not args.no_id, "levels": levels, "steps": args.steps,
                      "ms_per_step": round(1000 * seconds / args.steps, 1), "steps_per_s": round(rate, 3),
                      "images_per_s": round(rate * args.batch, 2),
                      "official_50000_steps_h": round(50_000 / rate / 3600, 2)}))


if __name__ == "__main__":
    main()
