"""optimize: StyleCLIP latent optimization (optimization/run_optimization.py), on a pack.

Adam on W+ [1, L, wDim]; before every step i the learning rate is set to
lr0 · min(1, t/0.05) · (½ − ½·cos(π·min(1, (1 − t)/0.25))), t = i/steps; loss (mode edit) =
CLIP loss + l2_lambda · Σ(w − w₀)² + id_lambda · ID loss(G(w), G(w₀)); mode free_generation =
CLIP loss only. Fixed noise (the pack's noise buffers). The generator, CLIP and ArcFace are rebuilt
in torch from the pack's ONNX graphs and .npy files (`optim_losses` has the losses).

Start: --latent F.npy ([wDim], [L, wDim] or [1, L, wDim]); or --seed N: z =
RandomState(N).randn(zDim), w = mapping(z), truncated toward the pack's w_avg with ψ = 0.7 (the
official code truncates toward a freshly sampled mean_latent(4096); w_avg is the checkpoint's
latent_avg and makes the start the engine's `generate --seed N --truncation 0.7` image); mode
free_generation without a start: w_avg on every row (official: the sampled mean latent).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.gradient_runs import SupervisorWatch, add_run_arguments

MODES = ("edit", "free_generation")


def add_arguments(parser):
    from styleclip_toolkit.optim_losses import CLIP_INPUTS

    parser.add_argument("--pack", required=True, help="model pack with generator and clip (image + text encoder)")
    parser.add_argument("--prompt", required=True, help="the text, used raw (no templates), as the official code")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--seed", type=int, help="start from z = RandomState(N).randn(zDim), truncated by --truncation")
    start.add_argument("--latent", help="start from this W / W+ .npy ([wDim], [L,wDim] or [1,L,wDim])")
    parser.add_argument("--truncation", type=float, default=0.7, help="ψ toward w_avg for --seed (official: 0.7)")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps (official: 300)")
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate (official: 0.1)")
    parser.add_argument("--l2-lambda", type=float, default=0.008, help="weight of Σ(w − w₀)² (mode edit; official 0.008)")
    parser.add_argument("--id-lambda", type=float, default=0.0,
                        help="weight of the ArcFace ID loss (mode edit; needs convert-identity; official 0, notebook 0.005)")
    parser.add_argument("--mode", choices=MODES, default="edit",
                        help="edit (default) or free_generation (CLIP loss only; starts from w_avg unless given a start)")
    parser.add_argument("--clip-input", choices=CLIP_INPUTS, default="official",
                        help="official: the generator output resized into CLIP unclamped and unnormalised (StyleCLIP's "
                             "quirk, issue #38); normalized: clamped to [0,1] and CLIP mean/std")
    parser.add_argument("--out", required=True, help="W+ result, float32 .npy [1, L, wDim]")
    parser.add_argument("--image", help="also write the result image (.png, or .npy for the raw output)")
    add_run_arguments(parser, log_every=10, log_note="and at the last", events="start, step, done, cancelled")
    parser.add_argument("--preview", help="with each progress step, write the current image (the one the step's "
                                          "losses were computed on), at most --preview-size px, to this .png; the "
                                          "step event names it (for a supervisor that shows progress)")
    parser.add_argument("--preview-size", type=int, default=128, help="largest preview side in px (default 128)")


class Optimization:
    """The pieces of one run, on one device: generator, losses, start latent."""

    def __init__(self, gen, clip_loss, w0, id_loss=None):
        self.gen, self.clip_loss, self.w0, self.id_loss = gen, clip_loss, w0, id_loss

    def losses(self, latent, mode, l2_lambda, id_lambda):
        """(total, parts) at `latent`; parts = {clip, l2, id} as tensors (0 where unused)."""
        image = self.gen(latent)
        self.last_image = image.detach()
        c_loss = self.clip_loss(image).sum()
        zero = torch.zeros((), device=latent.device)
        if mode != "edit":
            return c_loss, {"clip": c_loss, "l2": zero, "id": zero}
        l2 = ((self.w0 - latent) ** 2).sum()
        i_loss = self.id_loss(image) if self.id_loss is not None and id_lambda > 0 else zero
        return c_loss + l2_lambda * l2 + id_lambda * i_loss, {"clip": c_loss, "l2": l2, "id": i_loss}

    def run(self, steps, lr, l2_lambda=0.008, id_lambda=0.0, mode="edit", on_step=None):
        """The official loop. Returns the final W+ (detached). on_step(record) after every step,
        record = {step (1-based), lr, loss, clip, l2, id}: the losses at the latent the step started from."""
        from styleclip_toolkit.optim_losses import lr_at

        latent = self.w0.detach().clone()
        latent.requires_grad = True
        optimizer = torch.optim.Adam([latent], lr=lr)
        for i in range(steps):
            step_lr = lr_at(i / steps, lr)
            optimizer.param_groups[0]["lr"] = step_lr
            loss, parts = self.losses(latent, mode, l2_lambda, id_lambda)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if on_step is not None:
                on_step({"step": i + 1, "lr": step_lr, "loss": loss.item(),
                         **{k: float(v.item()) for k, v in parts.items()}})
        return latent.detach()


def load_start(gen, w_avg, seed=None, latent=None, truncation=0.7):
    """W+ [1, L, wDim] to start from: a latent file, a seed, or w_avg on every row."""
    from styleclip_toolkit.pack import load_numbers
    from styleclip_toolkit.stylegan2 import truncate

    rows, dim = gen.n_latent, gen.style_dim
    if latent is not None:
        w = torch.from_numpy(load_numbers(latent, "latent").astype(np.float32))
        if w.ndim == 3 and w.shape[0] != 1:
            raise ToolkitError(f"{latent} holds {w.shape[0]} latents; optimize takes one")
        if w.shape == (dim,):
            w = w.expand(rows, dim)
        w = w.reshape(-1, dim) if w.ndim == 3 else w
        if tuple(w.shape) != (rows, dim):
            raise ToolkitError(f"{latent} has shape {tuple(np.load(latent).shape)}; this pack takes "
                               f"[{dim}], [{rows}, {dim}] or [1, {rows}, {dim}]")
        return w[None].clone()
    if seed is None:
        return w_avg.expand(1, rows, dim).clone()
    if not 0 <= seed < 2 ** 32:
        raise ToolkitError(f"--seed must be in 0..4294967295, got {seed}")
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, dim).astype(np.float32))
    with torch.no_grad():
        w = truncate(gen.style(z), w_avg, truncation)
    return w[:, None].expand(1, rows, dim).clone()


def build(pack_dir, prompt, seed=None, latent=None, truncation=0.7, clip_input="official", with_identity=False,
          device="cpu"):
    """An Optimization for a pack, on `device` (a torch.device or name)."""
    from styleclip_toolkit.clip_pack import clip_from_pack, logit_scale_from_pack, prompt_ids
    from styleclip_toolkit.pack import load_numbers
    from styleclip_toolkit.optim_losses import ClipLoss, IdLoss
    from styleclip_toolkit.pack import pack_file
    from styleclip_toolkit.stylegan2 import load_generator_from_pack

    device = torch.device(device)
    gen = load_generator_from_pack(pack_dir)
    w_avg = torch.from_numpy(load_numbers(pack_file(pack_dir, "wAvg"), "w_avg").astype(np.float32).reshape(-1))
    w0 = load_start(gen, w_avg, seed, latent, truncation)
    facenet = None
    if with_identity:
        from styleclip_toolkit.convert_identity import identity_from_pack
        facenet = identity_from_pack(pack_dir)
    clip = clip_from_pack(pack_dir)
    ids = prompt_ids(pack_dir, prompt, clip.context_length)
    for module in (gen, clip, facenet):
        if module is not None:
            module.requires_grad_(False).eval().to(device)
    w0 = w0.to(device)
    clip_loss = ClipLoss(clip, ids.to(device), logit_scale_from_pack(pack_dir), gen.size, clip_input).to(device)
    id_loss = None
    if facenet is not None:
        with torch.no_grad():
            id_loss = IdLoss(facenet, gen(w0))
    return Optimization(gen, clip_loss, w0, id_loss)


class _Reporter:
    """Progress as JSON lines on stdout (--progress-jsonl) or text on stderr."""

    def __init__(self, jsonl, every, steps, preview=None, preview_size=128):
        self.jsonl, self.every, self.steps, self.last = jsonl, max(1, every), steps, 0
        self.preview, self.preview_size, self.opt = preview, preview_size, None
        # nothing is kept of a cancelled run: once the supervisor is gone, its result has no reader
        self.supervisor = SupervisorWatch()

    def emit(self, event, **fields):
        if self.jsonl:
            self.supervisor.write(json.dumps({"event": event, **fields}), sys.stdout)

    def write_preview(self):
        """The image of the latest step, area-downscaled to at most preview_size px, written atomically."""
        from styleclip_toolkit.image_io import save_image

        image = self.opt.last_image[:1].float()
        side = image.shape[-1]
        if side > self.preview_size:
            image = torch.nn.functional.interpolate(image, size=(self.preview_size, self.preview_size), mode="area")
        partial = f"{self.preview}.part.png"
        save_image(partial, image.cpu())
        os.replace(partial, self.preview)
        return str(self.preview)

    def __call__(self, record):
        self.last = record["step"]
        if self.supervisor.gone():
            raise KeyboardInterrupt  # stop as on SIGTERM
        if record["step"] % self.every and record["step"] != self.steps:
            return
        if self.jsonl:
            extra = {"preview": self.write_preview()} if self.preview and self.opt is not None else {}
            self.emit("step", steps=self.steps, **record, **extra)
        else:
            self.supervisor.write(f"step {record['step']}/{self.steps}: loss {record['loss']:.5f} (clip "
                                  f"{record['clip']:.5f}, l2 {record['l2']:.5f}, id {record['id']:.5f}), "
                                  f"lr {record['lr']:.4g}", sys.stderr)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args):
    from styleclip_toolkit.devices import pick_device, precision
    from styleclip_toolkit.image_io import check_image_path, save_image
    from styleclip_toolkit.pack import read_pack_json, save_npy

    if args.steps < 1 or args.lr <= 0 or args.l2_lambda < 0 or args.id_lambda < 0 or args.log_every < 1:
        raise ToolkitError("--steps and --log-every must be >= 1, --lr > 0, --l2-lambda and --id-lambda >= 0")
    if args.mode == "edit" and args.seed is None and args.latent is None:
        raise ToolkitError("mode edit needs a start: --seed N or --latent F.npy")
    if Path(args.out).suffix.lower() != ".npy":
        raise ToolkitError(f"--out {args.out}: the result is a W+ .npy file")
    if args.image:
        check_image_path(args.image)
    use_id = args.mode == "edit" and args.id_lambda > 0
    if use_id and not read_pack_json(args.pack).get("identity"):
        raise ToolkitError(f"--id-lambda {args.id_lambda} needs ArcFace weights in the pack: "
                           f"run convert-identity --format irse50 --checkpoint model_ir_se50.pth --out {args.pack}")
    device = pick_device(args.device)
    if args.preview:
        if Path(args.preview).suffix.lower() != ".png":
            raise ToolkitError(f"--preview {args.preview}: previews are .png files")
        if args.preview_size < 8:
            raise ToolkitError("--preview-size must be >= 8")
    report = _Reporter(args.progress_jsonl, args.log_every, args.steps, args.preview, args.preview_size)
    start = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a supervisor's SIGTERM cancels like Ctrl-C (exit 130)
    try:
        with precision(args.precision, device):
            opt = build(args.pack, args.prompt, args.seed, args.latent, args.truncation, args.clip_input, use_id, device)
            report.opt = opt
            report.emit("start", steps=args.steps, mode=args.mode, device=str(device),
                        resolution=opt.gen.size, numWs=opt.gen.n_latent)
            begin = time.perf_counter()
            latent = opt.run(args.steps, args.lr, args.l2_lambda, args.id_lambda, args.mode, on_step=report)
            seconds = time.perf_counter() - begin
            with torch.no_grad():
                loss, parts = opt.losses(latent, args.mode, args.l2_lambda, args.id_lambda)
                image = opt.gen(latent).cpu() if args.image else None
    except KeyboardInterrupt:
        report.emit("cancelled", step=report.last)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    save_npy(args.out, latent.cpu().numpy())
    if image is not None:
        save_image(args.image, image)
    final = {"loss": loss.item(), **{k: float(v.item()) for k, v in parts.items()}}
    summary = {"steps": args.steps, **final, "seconds": round(seconds, 3),
               "stepsPerS": round(args.steps / seconds, 3), "totalSeconds": round(time.perf_counter() - start, 3),
               "out": str(args.out), "image": args.image}
    if args.progress_jsonl:
        report.emit("done", **summary)
    else:
        print(f"optimized {args.steps} steps in {seconds:.1f} s ({summary['stepsPerS']} steps/s): loss "
              f"{final['loss']:.5f} (clip {final['clip']:.5f}, l2 {final['l2']:.5f}, id {final['id']:.5f}) -> {args.out}"
              + (f", {args.image}" if args.image else ""))
    return 0
