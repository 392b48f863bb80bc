"""directions: channel relevance fs3 for any generator, the official way (research notes §2.2).

For every conv style channel c and each of N sampled images: set c to its mean ± 5σ (the other
channels keep the image's own values), render both, embed them with CLIP (standard preprocess),
normalise each embedding, take the difference, normalise it, average over the images and
normalise again. The official SingleChannel.py renders one image at a time and takes hours.

Same numbers, faster:
- many (channel, image, ±) renders share one forward pass (`batch`);
- everything before the perturbed layer is the unperturbed image, so its activations are computed
  once per image and layer and each render resumes at the perturbed layer (`synthesis_steps.SynthesisSteps`);
- the work goes layer by layer and each finished layer is checkpointed into the pack, so an
  interrupted run resumes (`partial`);
- the non-fused modulated conv runs one shared-weight conv per batch instead of a grouped conv.

Not reproduced: the official loop's "mean clamping" (a shallow list copy leaves every channel it
has visited clamped at its mean for all later channels). It makes each row depend on the order
channels happen to be visited and no longer measures one channel at a time, as the paper
defines Δi_c; it would also serialise the channels. Every channel here starts from the images'
own styles.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time

import numpy as np
import torch

from styleclip_toolkit.devices import PRECISIONS, pick_device, precision
from styleclip_toolkit.directions.image_encoder import image_encoder_from_pack
from styleclip_toolkit.directions.partial import (PartialWriter, fingerprint, load_partial, partial_paths,
                                                  remove_partial)
from styleclip_toolkit.directions.synthesis_steps import SynthesisSteps
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import load_numbers, pack_file, pack_layout, read_pack_json, save_npy, update_pack_json
from styleclip_toolkit.stylegan2 import load_generator_from_pack, truncate, w_to_styles

SIGMAS = 5.0  # official M.alpha = [-5, 5], in units of the channel's std


RESUME_HELP = """\
Resuming: the run saves its work after every finished conv layer into the pack as
directions/fs3.partial.npy (float32 rows, 0 for layers not done) and directions/fs3.partial.json
(layers done, the settings and a hash of the generator, stats and CLIP files). Rerunning the same
command resumes from it ("resuming: N of M channels done"); --restart discards it. A partial made
with other --images/--seed/--truncation/--batch/--precision or other pack files is refused (rerun
with the same options, or --restart). On success both files are removed and fs3.npy is written."""


def add_arguments(parser):
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = RESUME_HELP
    parser.add_argument("--pack", required=True, help="model pack with generator, clip and stats (s_mean/s_std)")
    parser.add_argument("--images", type=int, default=100, help="sampled images per channel (official: 100)")
    parser.add_argument("--batch", type=int, default=64, help="renders per forward pass")
    parser.add_argument("--seed", type=int, default=5, help="numpy seed for the sampled z (official: 5)")
    parser.add_argument("--truncation", type=float, default=0.7, help="ψ for the sampled images (official: 0.7)")
    parser.add_argument("--clip", help="OpenAI CLIP checkpoint to embed with (default: the pack's clip/image_encoder.onnx)")
    parser.add_argument("--device", help="torch device, e.g. cuda or cpu (default: cuda when available)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="tf32 (CUDA only): tensor cores, about 2x faster, fs3 slightly different")
    parser.add_argument("--restart", action="store_true",
                        help="ignore and delete a saved partial result (directions/fs3.partial.*) instead of resuming")


def run(args):
    clip = None
    if args.clip:
        from styleclip_toolkit.clip_model import load_clip_checkpoint
        clip = load_clip_checkpoint(args.clip)
    start = time.perf_counter()
    try:
        fs3 = run_directions(args.pack, images=args.images, batch=args.batch, seed=args.seed,
                             truncation=args.truncation, clip=clip, device=args.device,
                             precision_name=args.precision, progress=_ProgressPrinter(), restart=args.restart)
    except RuntimeError as e:  # torch 1.13 and 2.x both raise a RuntimeError subclass
        if "out of memory" not in str(e):
            raise
        raise ToolkitError(f"out of memory with --batch {args.batch}: try a smaller --batch "
                           f"(--batch is part of the saved partial's settings: --restart to drop it)") from None
    except KeyboardInterrupt:
        if partial_paths(args.pack)[1].is_file():
            print(f"directions: finished layers kept in {partial_paths(args.pack)[1].parent}/fs3.partial.*; "
                  f"rerun the same command to resume", file=sys.stderr)
        raise
    print(f"fs3 {fs3.shape[0]}x{fs3.shape[1]} from {args.images} images in {time.perf_counter() - start:.1f} s "
          f"-> {pack_file(args.pack, 'fs3')}")


class _ProgressPrinter:
    """done/total count (channel, image) pairs still to compute in this run, two renders each.
    Called after every image group of every layer; prints at most every 10 s, and at the end."""

    def __init__(self, every=10.0):
        self.every, self.last = every, -math.inf

    def __call__(self, done, total, elapsed):
        if done < total and elapsed - self.last < self.every:
            return
        self.last = elapsed
        eta = elapsed / done * (total - done)
        print(f"directions: {100 * done / total:.1f}% ({2 * done} renders), {elapsed:.0f} s elapsed, "
              f"~{eta:.0f} s left", file=sys.stderr)


def run_directions(pack_dir, images=100, batch=64, seed=5, truncation=0.7, clip=None, device=None,
                   precision_name="fp32", progress=None, restart=False, log=None):
    """Computes fs3 [convChannels, embedDim] for a pack, writes directions/fs3.npy and pack.json
    "directions"; returns fs3. Needs the pack's generator, CLIP and stats (s_mean, s_std).

    Checkpoints after every conv layer to directions/fs3.partial.{npy,json} (`partial`) and
    resumes from a partial of the same settings unless restart; the partial goes on success."""
    if images < 1 or batch < 2:
        raise ToolkitError("--images must be >= 1 and --batch >= 2")
    log = log or (lambda line: print(line, file=sys.stderr))
    device = pick_device(device)
    meta = read_pack_json(pack_dir)
    layout = pack_layout(meta)
    mean, std = (_load_stat(pack_dir, key, layout) for key in ("mean", "std"))
    gen = load_generator_from_pack(pack_dir).to(device)
    given_clip = clip
    clip = (clip if clip is not None else image_encoder_from_pack(pack_dir)).float().eval().to(device)
    w_avg = torch.from_numpy(load_numbers(pack_file(pack_dir, "wAvg"), "w_avg").astype(np.float32)).to(device)
    settings = {"images": images, "seed": seed, "truncation": truncation, "batch": batch,
                "precision": precision_name, "sigmas": SIGMAS, "files": fingerprint(pack_dir, given_clip)}

    if restart:
        remove_partial(pack_dir)
    done = load_partial(pack_dir, settings, layout)
    if done:
        rows = sum(e["channels"] for e in layout if not e["toRgb"])
        log(f"resuming: {sum(r.shape[0] for r in done.values())} of {rows} channels done "
            f"({partial_paths(pack_dir)[1]}; --restart to start over)")
    with torch.no_grad():
        styles = sample_styles(gen, w_avg, images, seed, truncation)
    with torch.no_grad(), precision(precision_name, device):
        fs3 = channel_relevance(SynthesisSteps(gen), embedder(clip, device), styles, _split(mean, layout, device),
                                _split(std, layout, device), layout, batch, progress, done=done,
                                on_layer=PartialWriter(pack_dir, settings, layout, done))
    save_npy(pack_file(pack_dir, "fs3"), fs3)
    update_pack_json(pack_dir, directions={"source": "computed", "images": images, "seed": seed,
                                           "truncation": truncation, "sigmas": SIGMAS, "precision": precision_name})
    remove_partial(pack_dir)
    return fs3


def embedder(clip, device):
    """Generator outputs → CLIP image embeddings, with CLIP's standard preprocessing."""
    from styleclip_toolkit.clip_model import preprocess_tensor

    # preprocess_tensor makes its mean/std with torch.tensor(); on torch 2 a device context puts
    # them on the images' device (torch 1.13 has no such context: CPU only there).
    context = device if hasattr(torch.device, "__enter__") else contextlib.nullcontext()

    def embed(image):
        with context:
            return clip.encode_image(preprocess_tensor(image, clip.image_size))
    return embed


def sample_styles(gen, w_avg, images, seed, truncation):
    """Per-layer styles of the official sample set: z = RandomState(seed).randn(N, zDim), ψ on every row."""
    z = np.random.RandomState(seed).randn(images, gen.style_dim).astype(np.float32)
    w = truncate(gen.style(torch.from_numpy(z).to(w_avg.device)), w_avg, truncation)
    return w_to_styles(gen, w[:, None].expand(-1, gen.n_latent, -1))


def channel_relevance(steps, embed, styles, mean, std, layout, batch, progress=None, done=None, on_layer=None):
    """fs3 rows for all conv channels (layout order), from the per-layer styles of N images.

    steps: SynthesisSteps; embed: image batch → CLIP embeddings; styles, mean, std: one tensor per
    layer ([N, C] and [C]). Renders of one batch all resume at the same layer from cached state.
    Layers are finished one at a time: done = {layout index: its float32 rows} skips those layers
    (a resumed run), on_layer(j, rows) is called with each newly finished layer's rows."""
    done = dict(done or {})
    n_images = styles[0].shape[0]
    conv_layers = [j for j, e in enumerate(layout) if not e["toRgb"]]
    todo = [j for j in conv_layers if j not in done]
    total = sum(layout[j]["channels"] for j in todo) * n_images
    # Images per group: enough that even the narrowest layer fills a batch; cached state stays small.
    group = min(n_images, math.ceil(batch / (2 * min(layout[j]["channels"] for j in conv_layers))))
    pairs, start = 0, time.perf_counter()
    for j in todo:
        acc = None
        for first in range(0, n_images, group):
            sub = [s[first:first + group] for s in styles]
            state = steps.initial_state(sub[0].shape[0])
            for k in range(j):  # the unperturbed image up to layer j, shared by all its renders
                state = steps.step(k, state, sub[k])
            for rows, d in layer_differences(steps, embed, sub, state, j, mean[j], std[j], batch):
                if acc is None:
                    acc = torch.zeros(layout[j]["channels"], d.shape[1], dtype=torch.float64, device=d.device)
                acc.index_add_(0, rows, d)
            pairs += layout[j]["channels"] * sub[0].shape[0]
            if progress and first + group < n_images:
                progress(pairs, total, time.perf_counter() - start)
        done[j] = _normalise(acc).float().cpu().numpy()
        if on_layer:
            on_layer(j, done[j])
        if progress:  # after on_layer: a progress that raises leaves the finished layer saved
            progress(pairs, total, time.perf_counter() - start)
    return np.concatenate([done[j] for j in conv_layers])


def layer_differences(steps, embed, styles, state, j, mean, std, batch):
    """Yields (channel index, normalised f₊ − f₋) for every channel of layer j and every image."""
    n, channels = styles[j].shape
    x, skip = state
    pairs = channels * n  # entry e: channel e // n, image e % n; rendered at −5σ then +5σ
    per_batch = max(1, batch // 2)
    for first in range(0, pairs, per_batch):
        e = torch.arange(first, min(pairs, first + per_batch), device=x.device)
        c, img = (e // n).repeat_interleave(2), (e % n).repeat_interleave(2)
        sign = torch.tensor([-SIGMAS, SIGMAS], device=x.device).repeat(e.numel())
        style_j = styles[j][img].clone()
        style_j[torch.arange(img.numel(), device=x.device), c] = mean[c] + sign * std[c]
        resumed = [None] * j + [style_j] + [s[img] for s in styles[j + 1:]]
        image = steps.run(resumed, start=j, state=(x[img], None if skip is None else skip[img]))
        f = _normalise(embed(image).double())
        yield c[0::2], _normalise(f[1::2] - f[0::2])


def _normalise(v):
    """Unit rows; an all-zero row (a channel that changes nothing) stays zero instead of NaN."""
    norm = v.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, v / norm.clamp_min(1e-300), torch.zeros_like(v))


def _load_stat(pack_dir, key, layout):
    path = pack_file(pack_dir, key)
    if not path.is_file():
        raise ToolkitError(f"pack has no {path.name}: run `stats --pack {pack_dir}` first")
    stat = load_numbers(path, f"s_{key}").astype(np.float32).reshape(-1)
    expected = sum(e["channels"] for e in layout)
    if stat.size != expected:
        raise ToolkitError(f"{path} has {stat.size} entries, the pack has {expected} style channels")
    return stat


def _split(flat, layout, device):
    return list(torch.from_numpy(flat).to(device).split([e["channels"] for e in layout]))
