"""train-mapper: StyleCLIP latent mapper training (mapper/training/coach.py), on a pack.

The official coach's semantics, rebuilt over the pack's generator, CLIP and ArcFace (torch modules
rebuilt from the pack's ONNX graphs and .npy files, frozen):
  - LevelsMapper (convert_mapper.LevelsMapper): rows 0–3 coarse, 4–7 medium, 8… fine, one
    PixelNorm + 4 × EqualLinear(lr_mul 0.01, fused lrelu) per enabled level; a disabled level
    outputs zeros. Initial weights: rosinality's init (weight = randn / lr_mul, bias 0) drawn in
    construction order (coarse, medium, fine; layers 1–4) from a torch.Generator seeded with --seed.
  - each step: a batch w of W+ latents; x = G(w) (no grad; only with the ID loss); ŵ = w + 0.1·M(w); x̂ = G(ŵ);
    loss = id_lambda·ID(x̂, x) + clip_lambda·mean CLIP loss(x̂) + l2_lambda·MSE(ŵ, w) (the
    official order; a term with weight 0 is skipped); Ranger (ranger.py) or Adam on the mapper only.
    Defaults as the official train_options: clip 1.0, l2 0.8, id 0.1, Ranger, lr 0.5, batch 2.
  - data: --latents F.npy or F.pt ([N, L, wDim] W+, e.g. the official e4e-inverted train_faces.pt), or --dataset-size (5000)
    z from numpy RandomState(--seed), mapped and truncated with ψ 0.7 toward the pack's w_avg (the
    official code means its generator's latent_avg). Each epoch is torch.randperm(N) drawn from the
    same generator as the initial weights (after them); batches are consecutive slices; a last
    incomplete batch is dropped (DataLoader shuffle=True, drop_last=True).
  - --steps N optimizer steps (the official loop runs max_steps + 1, steps 0…max_steps); no
    validation pass: the result is the mapper after the last step.

Checkpoints (every --checkpoint-every steps and on SIGTERM/SIGINT): <out>/mappers/<slug>.train.npz,
a plain .npz (no pickles): mapper weights, optimizer state, the step, the data order (generator
state, the epoch's permutation, the position in it) and the settings as JSON. --resume continues
from it; the result equals an uninterrupted run (bit-identical on CPU). A checkpoint from other
settings or other pack files is refused. Removed after the mapper is written, and when a run
without --resume starts (so a later --resume never continues an older run). A run whose parent
process is gone (its supervisor was killed) or whose progress pipe is closed stops as on SIGTERM.

Preview (--preview P.png): G(w) and G(w + 0.1·M(w)) side by side for the first training latent,
at most --preview-size px a side each, at the first progress step, at progress steps at least
--preview-every-s seconds after the last preview, and at the end. Rendering draws no random numbers
(the generator's noise is fixed) and has no gradients: a run with previews trains exactly as one
without.

Output: --out is the pack itself, another pack with the same generator, or a mapper folder (no
pack.json: its index is mappers.json, see models/README.md). The graph is written like converted
official mappers (convert_mapper.write_mapper: mappers/<slug>.onnx, then the index entry; both
atomic).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from styleclip_toolkit.errors import ToolkitError, changed_settings
from styleclip_toolkit.gradient_runs import SupervisorWatch, add_run_arguments

LEVEL_NAMES = ("coarse", "medium", "fine")
FIRST_ROW = {"coarse": 0, "medium": 4, "fine": 8}
OPTIMIZERS = ("ranger", "adam")
MAX_STEPS = 1_000_000
MAX_BATCH = 4096
STEP_SCALE = 0.1  # ŵ = w + 0.1·M(w)
TRUNCATION = 0.7
CHECKPOINT_FORMAT = "styleclip-train-mapper"
FOLDER_INDEX = "mappers.json"
FOLDER_FORMAT = "styleclip-mappers"
GENERATOR_FILES = ("mapping", "toStyles", "synthesis", "wAvg")
CLIP_FILES = ("textEncoder", "imageEncoder", "tokenizer")


def add_arguments(parser):
    parser.add_argument("--pack", required=True, help="model pack with generator, clip (image + text encoder) and, "
                                                       "for --id-lambda > 0, identity (convert-identity)")
    parser.add_argument("--prompt", required=True, help="the text, used raw (no templates), as the official coach; "
                                                         "also the mapper's name (slug = file name)")
    parser.add_argument("--steps", type=int, default=50_000, help=f"optimizer steps, 1..{MAX_STEPS} (official: 50000)")
    parser.add_argument("--batch", type=int, default=2, help="latents per step (official: 2)")
    for level in LEVEL_NAMES:
        parser.add_argument(f"--no-{level}", action="store_true", help=f"no {level} mapper (its rows stay unchanged)")
    parser.add_argument("--clip-lambda", type=float, default=1.0, help="weight of the CLIP loss (official 1.0)")
    parser.add_argument("--l2-lambda", type=float, default=0.8, help="weight of MSE(ŵ, w) (official 0.8)")
    parser.add_argument("--id-lambda", type=float, default=0.1,
                        help="weight of the ArcFace ID loss (official 0.1; needs convert-identity; 0 turns it off)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="ranger", help="ranger (official default) or adam")
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate (official 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="fixes the initial weights, the data order and the "
                                                            "sampled latents (default 0)")
    parser.add_argument("--latents", help="W+ training latents [N, L, wDim]: a float .npy, or a .pt holding one tensor "
                                          "(the official e4e-inverted train_faces.pt); default: --dataset-size "
                                          "sampled faces (ψ 0.7)")
    parser.add_argument("--dataset-size", type=int, default=5000, help="sampled latents without --latents (official 5000)")
    parser.add_argument("--checkpoint-every", type=int, default=1000,
                        help="write a checkpoint every K steps (0: only when cancelled)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out>/mappers/<slug>.train.npz when there is one (same settings needed); "
                             "a run without --resume deletes that checkpoint before it starts")
    parser.add_argument("--out", required=True, help="where the mapper goes: the pack, another pack with the same "
                                                      "generator, or a mapper folder (mappers.json + mappers/)")
    add_run_arguments(parser, log_every=50, log_note="and at the last; official 50",
                      events="start, step, checkpoint, done, cancelled")
    parser.add_argument("--preview", help="write a .png of the first training latent's image and its edit with the "
                                          "current mapper, side by side: at the first progress step, then at a "
                                          "progress step once --preview-every-s seconds passed, and at the end; "
                                          "the step and done events name it")
    parser.add_argument("--preview-every-s", type=float, default=120.0,
                        help="least seconds between previews (default 120; 0: at every progress step)")
    parser.add_argument("--preview-size", type=int, default=128, help="largest side of each preview image in px "
                                                                      "(default 128, at least 8)")


# ---------------------------------------------------------------------------------------------
# Pieces


def init_mapper(levels: dict, dim: int, generator: torch.Generator):
    """A LevelsMapper with rosinality's EqualLinear init drawn from `generator` in construction order."""
    from styleclip_toolkit.convert_mapper import LevelsMapper
    from styleclip_toolkit.stylegan2 import EqualLinear

    with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG: leave it untouched
        mapper = LevelsMapper(levels, dim)
    with torch.no_grad():
        for module in mapper.modules():
            if isinstance(module, EqualLinear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator).div_(module.lr_mul))
                module.bias.zero_()
    return mapper


def load_latents(path, num_ws: int, dim: int) -> torch.Tensor:
    """float32 [N, L, wDim] from a .npy (never unpickled) or, like the official train_faces.pt, a
    torch file holding one tensor (through safe_torch_load's allow-list)."""
    from styleclip_toolkit.pack import load_numbers

    if Path(path).suffix.lower() in (".pt", ".pth"):
        from styleclip_toolkit.safe_load import safe_torch_load

        if not Path(path).is_file():
            raise ToolkitError(f"latents not found: {path}")
        obj = safe_torch_load(path)
        if not torch.is_tensor(obj) or not obj.is_floating_point() or not torch.isfinite(obj).all():
            raise ToolkitError(f"--latents {path} must hold one finite float tensor [N, {num_ws}, {dim}]")
        arr = obj.detach().cpu().float().numpy()
    else:
        arr = load_numbers(path, "latents")
    if arr.ndim != 3 or arr.shape[1:] != (num_ws, dim):
        raise ToolkitError(f"--latents {path} has shape {list(arr.shape)}; this pack takes [N, {num_ws}, {dim}] "
                           f"(N W+ latents)")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def sample_latents(gen, w_avg: torch.Tensor, count: int, seed: int, truncation: float = TRUNCATION) -> torch.Tensor:
    """[count, wDim]: z = RandomState(seed).randn(count, zDim), mapped, truncated toward w_avg (every row)."""
    from styleclip_toolkit.stylegan2 import truncate

    z = torch.from_numpy(np.random.RandomState(seed).randn(count, gen.style_dim).astype(np.float32))
    with torch.no_grad():
        return torch.cat([truncate(gen.style(part), w_avg, truncation) for part in z.split(1000)])


class DataOrder:
    """Batches of indices: each epoch torch.randperm(n, generator), consecutive slices, the last
    incomplete one dropped."""

    def __init__(self, n: int, batch: int, generator: torch.Generator):
        self.n, self.batch, self.generator = n, batch, generator
        self.perm, self.cursor = None, 0

    def next(self) -> torch.Tensor:
        if self.perm is None or self.cursor + self.batch > self.n:
            self.perm, self.cursor = torch.randperm(self.n, generator=self.generator), 0
        idx = self.perm[self.cursor:self.cursor + self.batch]
        self.cursor += self.batch
        return idx


def make_optimizer(name: str, params, lr: float):
    from styleclip_toolkit.ranger import Ranger

    return torch.optim.Adam(params, lr=lr) if name == "adam" else Ranger(params, lr=lr)


class MapperTraining:
    """One training run on one device: frozen generator and losses, the mapper, its optimizer, the data."""

    def __init__(self, gen, clip_loss, facenet, latents, mapper, optimizer, order, lambdas: dict, device):
        self.gen, self.clip_loss, self.facenet, self.latents = gen, clip_loss, facenet, latents
        self.mapper, self.optimizer, self.order, self.lambdas = mapper, optimizer, order, dict(lambdas)
        self.device, self.step = torch.device(device), 0
        self.settings, self.meta, self.generator_hash = {}, {}, None

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        w = self.latents[idx]
        if w.ndim == 2:
            w = w[:, None].expand(-1, self.gen.n_latent, -1)
        return w.to(self.device)

    def losses(self, w, x, w_hat, x_hat):
        """(loss, {clip, l2, id}) in the official order: id first, then clip, then l2; unused terms 0."""
        from styleclip_toolkit.optim_losses import IdLoss

        zero = torch.zeros((), device=w.device)
        parts, loss = {"clip": zero, "l2": zero, "id": zero}, None
        lam = self.lambdas
        if lam["id"] > 0:
            parts["id"] = IdLoss(self.facenet, x)(x_hat)
            loss = parts["id"] * lam["id"]
        if lam["clip"] > 0:
            parts["clip"] = self.clip_loss(x_hat).mean()
            loss = parts["clip"] * lam["clip"] if loss is None else loss + parts["clip"] * lam["clip"]
        if lam["l2"] > 0:
            parts["l2"] = F.mse_loss(w_hat, w)
            loss = parts["l2"] * lam["l2"] if loss is None else loss + parts["l2"] * lam["l2"]
        return loss, parts

    def train_step(self) -> dict:
        """One optimizer step; returns {step (steps done), loss, clip, l2, id} as 0-d tensors (detached)
        at the batch the step trained on."""
        self.mapper.train()
        w = self.batch(self.order.next())
        x = None
        if self.lambdas["id"] > 0:  # G(w) only feeds the ID loss (and the official image log)
            with torch.no_grad():
                x = self.gen(w)
        w_hat = w + STEP_SCALE * self.mapper(w)
        x_hat = self.gen(w_hat)
        loss, parts = self.losses(w, x, w_hat, x_hat)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return {"step": self.step, "loss": loss.detach(), **{k: v.detach() for k, v in parts.items()}}

    def preview_images(self, size: int) -> torch.Tensor:
        """[2, 3, h, w] on the CPU, h = w <= size: G(w) and G(w + 0.1·M(w)) for w = latents[0], area-downscaled.
        Changes nothing the training uses: no gradients, no random numbers, the mapper's mode restored."""
        was_training = self.mapper.training
        self.mapper.eval()
        try:
            with torch.no_grad():
                w = self.batch(torch.zeros(1, dtype=torch.long))
                images = self.gen(torch.cat([w, w + STEP_SCALE * self.mapper(w)])).float()
        finally:
            self.mapper.train(was_training)
        if images.shape[-1] > size:
            images = F.interpolate(images, size=(size, size), mode="area")
        return images.cpu()

    def run(self, steps: int, on_step=None, stop=None) -> None:
        """Trains until `steps` steps are done (or stop() is true before a step)."""
        while self.step < steps and not (stop and stop()):
            record = self.train_step()
            if on_step is not None:
                on_step(record)

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint_arrays(self) -> dict:
        """Everything a resume needs, as numpy arrays plus one JSON `meta` array (no pickles)."""
        arrays = {f"mapper:{k}": v.detach().cpu().numpy() for k, v in self.mapper.state_dict().items()}
        opt = self.optimizer.state_dict()
        state_meta = {}
        for i, st in opt["state"].items():
            state_meta[str(i)] = {}
            for key, value in st.items():
                if torch.is_tensor(value):
                    arrays[f"optimizer:{i}:{key}"] = value.detach().cpu().numpy()
                else:
                    state_meta[str(i)][key] = value
        arrays["order:generator"] = self.order.generator.get_state().numpy()
        if self.order.perm is not None:
            arrays["order:perm"] = self.order.perm.numpy()
        meta = {"format": CHECKPOINT_FORMAT, "version": 1, "step": self.step, "cursor": self.order.cursor,
                "settings": self.settings, "paramGroups": opt["param_groups"], "state": state_meta}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        return arrays

    def load_checkpoint_arrays(self, meta: dict, arrays: dict) -> None:
        mapper_sd = {k[len("mapper:"):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("mapper:")}
        self.mapper.load_state_dict(mapper_sd)
        state = {int(i): dict(v) for i, v in meta["state"].items()}
        for key, value in arrays.items():
            if key.startswith("optimizer:"):
                _, i, name = key.split(":", 2)
                state.setdefault(int(i), {})[name] = torch.from_numpy(value)  # load_state_dict places them
        groups = [{**g, **({"betas": tuple(g["betas"])} if "betas" in g else {})} for g in meta["paramGroups"]]
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        self.order.generator.set_state(torch.from_numpy(arrays["order:generator"]))
        self.order.perm = torch.from_numpy(arrays["order:perm"]) if "order:perm" in arrays else None
        self.order.cursor = int(meta["cursor"])
        self.step = int(meta["step"])


def save_checkpoint(path, training: MapperTraining) -> None:
    from styleclip_toolkit.pack import atomic_write

    arrays = training.checkpoint_arrays()

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def read_checkpoint(path) -> tuple:
    """(meta, arrays) of a checkpoint; ToolkitError when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(bytes(arrays.pop("meta")).decode())
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a train-mapper checkpoint")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ToolkitError(f"cannot read checkpoint {path} ({e}): delete it or run without --resume") from None
    return meta, arrays


def resume(path, training: MapperTraining) -> None:
    meta, arrays = read_checkpoint(path)
    saved, now = meta.get("settings", {}), training.settings
    if saved != now:
        diff = changed_settings(saved, now, "checkpoint", "the pack's generator/CLIP/ArcFace files have changed")
        raise ToolkitError(f"checkpoint {path} was made with other settings ({diff}): rerun with the same options "
                           f"to resume it, or without --resume to start over")
    training.load_checkpoint_arrays(meta, arrays)


# ---------------------------------------------------------------------------------------------
# Building from a pack


def files_hash(pack_dir, keys=(), extra_paths=()) -> str:
    from styleclip_toolkit.pack import pack_file

    h = hashlib.sha256()
    for name, path in [(k, pack_file(pack_dir, k)) for k in keys] + [(str(p), Path(pack_dir) / p) for p in extra_paths]:
        h.update(f"{name}\0".encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def check_pack(pack_dir, levels: dict, clip_lambda: float, id_lambda: float) -> dict:
    """pack.json, after one-line errors for what the options need and the pack lacks."""
    from styleclip_toolkit.pack import pack_file, read_pack_json

    meta = read_pack_json(pack_dir)
    if "wDim" not in meta or "numWs" not in meta:
        raise ToolkitError(f"pack {pack_dir} has no generator yet: run convert-generator first")
    for level in LEVEL_NAMES:
        if levels[level] and meta["numWs"] <= FIRST_ROW[level]:
            raise ToolkitError(f"the pack has {meta['numWs']} W+ rows: no {level} rows ({FIRST_ROW[level]}…) "
                               f"for the {level} mapper (pass --no-{level})")
    if clip_lambda > 0:
        for key in CLIP_FILES:
            if not pack_file(pack_dir, key).is_file():
                raise ToolkitError(f"--clip-lambda needs the pack's CLIP {pack_file(pack_dir, key).name} "
                                   f"(image and text encoder): run convert-clip --out {pack_dir}")
    if id_lambda > 0 and not meta.get("identity"):
        raise ToolkitError(f"--id-lambda {id_lambda:g} needs ArcFace weights in the pack: run convert-identity "
                           f"--format irse50 --checkpoint model_ir_se50.pth --out {pack_dir}, or pass --id-lambda 0")
    return meta


def build(pack_dir, prompt: str, levels: dict | None = None, batch: int = 2, clip_lambda: float = 1.0,
          l2_lambda: float = 0.8, id_lambda: float = 0.1, optimizer: str = "ranger", lr: float = 0.5, seed: int = 0,
          latents=None, dataset_size: int = 5000, device="cpu") -> MapperTraining:
    """A MapperTraining at step 0 for a pack, on `device`; .settings (what a checkpoint must match),
    .meta (pack.json) and .generator_hash are filled in."""
    from styleclip_toolkit.clip_pack import clip_from_pack, logit_scale_from_pack, prompt_ids
    from styleclip_toolkit.optim_losses import ClipLoss
    from styleclip_toolkit.pack import load_numbers, pack_file
    from styleclip_toolkit.stylegan2 import load_generator_from_pack

    levels = dict(levels or {"coarse": True, "medium": True, "fine": True})
    meta = check_pack(pack_dir, levels, clip_lambda, id_lambda)
    device = torch.device(device)
    gen = load_generator_from_pack(pack_dir)
    w_avg = torch.from_numpy(load_numbers(pack_file(pack_dir, "wAvg"), "w_avg").astype(np.float32).reshape(-1))
    if latents is not None:
        data = load_latents(latents, gen.n_latent, gen.style_dim)
        source = {"file": Path(latents).name, "sha256": files_hash(Path(latents).parent, extra_paths=[Path(latents).name])}
    else:
        data = sample_latents(gen, w_avg, dataset_size, seed)
        source = {"sampled": dataset_size, "truncation": TRUNCATION}
    if data.shape[0] < batch:
        raise ToolkitError(f"{data.shape[0]} training latents is fewer than one batch of {batch}")
    clip_loss = facenet = None
    if clip_lambda > 0:
        clip = clip_from_pack(pack_dir)
        ids = prompt_ids(pack_dir, prompt, clip.context_length)
        clip_loss = ClipLoss(clip.requires_grad_(False).eval().to(device), ids.to(device),
                             logit_scale_from_pack(pack_dir), gen.size).to(device)
    if id_lambda > 0:
        from styleclip_toolkit.convert_identity import identity_from_pack
        facenet = identity_from_pack(pack_dir).requires_grad_(False).eval().to(device)
    gen.requires_grad_(False).eval().to(device)
    generator = torch.Generator().manual_seed(seed)
    mapper = init_mapper(levels, gen.style_dim, generator).to(device)
    training = MapperTraining(gen, clip_loss, facenet, data, mapper, make_optimizer(optimizer, mapper.parameters(), lr),
                              DataOrder(data.shape[0], batch, generator),
                              {"clip": clip_lambda, "l2": l2_lambda, "id": id_lambda}, device)
    training.meta = meta
    training.generator_hash = files_hash(pack_dir, GENERATOR_FILES)
    loss_files = files_hash(pack_dir, (CLIP_FILES if clip_lambda > 0 else ()),
                            [meta["identity"]["weights"], meta["identity"]["manifest"]] if id_lambda > 0 else [])
    training.settings = {
        "prompt": prompt, "levels": levels, "batch": batch, "clipLambda": clip_lambda, "l2Lambda": l2_lambda,
        "idLambda": id_lambda, "logitScale": logit_scale_from_pack(pack_dir) if clip_lambda > 0 else None,
        "optimizer": optimizer, "lr": lr, "seed": seed, "latents": source,
        "files": {"generator": training.generator_hash, "losses": loss_files},
    }
    return training


# ---------------------------------------------------------------------------------------------
# Output: a pack or a mapper folder


def output_index(out_dir, pack_dir, meta: dict, generator_hash: str) -> tuple:
    """(index path, index content) where the mapper entry goes. A pack other than --pack must have
    the same generator; a mapper folder's mappers.json records the generator it belongs to."""
    from styleclip_toolkit.pack import read_pack_json

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ToolkitError(f"--out {out} is a file: give a pack or a mapper folder")
    if (out / "pack.json").is_file():
        if out.resolve() != Path(pack_dir).resolve():
            try:
                same = files_hash(out, GENERATOR_FILES) == generator_hash
            except OSError:
                same = False
            if not same:
                raise ToolkitError(f"--out {out} is a pack with another generator than --pack {pack_dir}: "
                                   f"a mapper only works with the generator it was trained on")
        return out / "pack.json", read_pack_json(out)
    index = out / FOLDER_INDEX
    if index.is_file():
        try:
            data = json.loads(index.read_text())
            belongs = data["pack"]["generator"]
            if data.get("format") != FOLDER_FORMAT or not isinstance(data.get("mappers", []), list):
                raise ValueError("not a mapper folder index")
        except (ValueError, KeyError, TypeError) as e:
            raise ToolkitError(f"{index} is not a mapper folder index ({e})") from None
        if belongs != generator_hash:
            raise ToolkitError(f"mapper folder {out} belongs to another generator ({data['pack'].get('name')}), "
                               f"not to pack {pack_dir}")
        return index, data
    pack = {k: meta.get(k) for k in ("name", "resolution", "wDim", "numWs")}
    return index, {"format": FOLDER_FORMAT, "version": 1, "pack": {**pack, "generator": generator_hash}, "mappers": []}


@contextlib.contextmanager
def index_lock(out_dir):
    """An exclusive flock on the <out>/mappers folder itself (no lock file left behind), held while the
    index is read, extended and written; no lock where there is no fcntl."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder = Path(out_dir) / "mappers"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def checkpoint_path(out_dir, slug: str) -> Path:
    return Path(out_dir) / "mappers" / f"{slug}.train.npz"


# ---------------------------------------------------------------------------------------------
# CLI


class _Reporter:
    """Progress as JSON lines on stdout (--progress-jsonl) or text on stderr; previews (--preview)."""

    def __init__(self, jsonl: bool, every: int, steps: int, preview=None, preview_size=128, preview_every_s=120.0,
                 clock=time.monotonic):
        self.jsonl, self.every, self.steps, self.last = jsonl, max(1, every), steps, None
        self.preview, self.preview_size, self.preview_every_s, self.clock = preview, preview_size, preview_every_s, clock
        self.render, self.preview_at = None, None  # render(size) -> images, set once the training is built
        # the supervisor's rerun resumes from the checkpoint: once it is gone, this run checkpoints and stops
        self.supervisor = SupervisorWatch()

    def emit(self, event, **fields):
        if self.jsonl:
            self.supervisor.write(json.dumps({"event": event, **fields}), sys.stdout)

    def text(self, line):
        if not self.jsonl:
            self.supervisor.write(line, sys.stderr)

    def write_preview(self) -> str:
        """The preview PNG (2 images side by side), written atomically; its path."""
        from styleclip_toolkit.image_io import png_bytes, to_uint8_strip
        from styleclip_toolkit.pack import atomic_write

        data = png_bytes(to_uint8_strip(self.render(self.preview_size).numpy()))
        atomic_write(self.preview, lambda tmp: tmp.write_bytes(data))
        self.preview_at = self.clock()
        return str(self.preview)

    def __call__(self, record):
        self.last = record
        if record["step"] % self.every and record["step"] != self.steps:
            return
        values = {k: float(v) for k, v in record.items() if k != "step"}
        extra = {}
        if self.preview and (self.preview_at is None or self.clock() - self.preview_at >= self.preview_every_s):
            extra["preview"] = self.write_preview()
        self.emit("step", step=record["step"], steps=self.steps, **values, **extra)
        self.text(f"step {record['step']}/{self.steps}: loss {values['loss']:.5f} (clip {values['clip']:.5f}, "
                  f"l2 {values['l2']:.5f}, id {values['id']:.5f})")


def _check_args(args) -> None:
    if not args.prompt.strip():
        raise ToolkitError("--prompt is empty: give the text the mapper should follow")
    if not 1 <= args.steps <= MAX_STEPS:
        raise ToolkitError(f"--steps must be in 1..{MAX_STEPS}, got {args.steps}")
    if not 1 <= args.batch <= MAX_BATCH:
        raise ToolkitError(f"--batch must be in 1..{MAX_BATCH}, got {args.batch}")
    lambdas = (args.clip_lambda, args.l2_lambda, args.id_lambda)
    if not all(math.isfinite(v) and v >= 0 for v in lambdas) or not any(v > 0 for v in lambdas):
        raise ToolkitError("--clip-lambda, --l2-lambda and --id-lambda must be finite, >= 0, and not all 0")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ToolkitError(f"--lr must be > 0, got {args.lr}")
    if not 0 <= args.seed < 2 ** 32:
        raise ToolkitError(f"--seed must be in 0..4294967295, got {args.seed}")
    if args.checkpoint_every < 0 or args.log_every < 1 or args.dataset_size < 1:
        raise ToolkitError("--checkpoint-every must be >= 0, --log-every and --dataset-size >= 1")
    if all(getattr(args, f"no_{level}") for level in LEVEL_NAMES):
        raise ToolkitError("--no-coarse, --no-medium and --no-fine together leave nothing to train")
    if args.preview and Path(args.preview).suffix.lower() != ".png":
        raise ToolkitError(f"--preview {args.preview}: previews are .png files")
    if args.preview_size < 8:
        raise ToolkitError(f"--preview-size must be >= 8, got {args.preview_size}")
    if not args.preview_every_s >= 0:  # NaN too
        raise ToolkitError(f"--preview-every-s must be >= 0, got {args.preview_every_s:g}")


def run(args):
    from styleclip_toolkit.convert_mapper import write_mapper
    from styleclip_toolkit.devices import pick_device, precision
    from styleclip_toolkit.pack import slugify

    _check_args(args)
    prompt = args.prompt.strip()
    slug = slugify(prompt)
    levels = {level: not getattr(args, f"no_{level}") for level in LEVEL_NAMES}
    device = pick_device(args.device)
    ckpt = checkpoint_path(args.out, slug)
    report = _Reporter(args.progress_jsonl, args.log_every, args.steps, args.preview, args.preview_size,
                       args.preview_every_s)
    cancel = []
    handlers = {s: signal.signal(s, lambda signum, frame: cancel.append(signum)) for s in (signal.SIGTERM, signal.SIGINT)}
    start = time.perf_counter()
    try:
        with precision(args.precision, device):
            tr = build(args.pack, prompt, levels, args.batch, args.clip_lambda, args.l2_lambda, args.id_lambda,
                       args.optimizer, args.lr, args.seed, args.latents, args.dataset_size, device)
            output_index(args.out, args.pack, tr.meta, tr.generator_hash)  # fail before training, not after
            report.render = tr.preview_images
            resumed = args.resume and ckpt.is_file()
            if not args.resume and ckpt.is_file():
                ckpt.unlink()  # an older run's: a later --resume must continue this run or none
            if resumed:
                resume(ckpt, tr)
                if tr.step > args.steps:
                    raise ToolkitError(f"checkpoint {ckpt} is at step {tr.step}, past --steps {args.steps}: "
                                       f"give --steps {tr.step} or more, or run without --resume to start over")
            saved_at, first = tr.step, tr.step
            report.emit("start", steps=args.steps, step=tr.step, resumed=resumed, name=prompt, slug=slug,
                        levels=levels, batch=args.batch, optimizer=args.optimizer, lr=args.lr,
                        latents=int(tr.latents.shape[0]), device=str(device), resolution=tr.gen.size,
                        numWs=tr.gen.n_latent, checkpoint=str(ckpt))
            report.text(f"training mapper '{prompt}' on {device}: steps {tr.step + 1}..{args.steps}"
                        + (f" (resumed from {ckpt})" if resumed else ""))
            begin = time.perf_counter()

            def on_step(record):
                nonlocal saved_at
                report(record)
                if args.checkpoint_every and tr.step % args.checkpoint_every == 0 and tr.step < args.steps:
                    save_checkpoint(ckpt, tr)
                    saved_at = tr.step
                    report.emit("checkpoint", step=tr.step, path=str(ckpt))

            tr.run(args.steps, on_step, stop=lambda: bool(cancel) or report.supervisor.gone())
            seconds = time.perf_counter() - begin
            if tr.step < args.steps:  # cancelled
                if tr.step > saved_at:
                    save_checkpoint(ckpt, tr)
                report.emit("cancelled", step=tr.step, checkpoint=str(ckpt) if ckpt.is_file() else None)
                report.text(f"cancelled at step {tr.step}" + (f"; --resume continues from {ckpt}" if ckpt.is_file() else ""))
                raise KeyboardInterrupt
            preview = report.write_preview() if args.preview else None
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    training = {"steps": args.steps, "batch": args.batch, "seed": args.seed, "optimizer": args.optimizer, "lr": args.lr,
                "lambdas": {"clip": args.clip_lambda, "l2": args.l2_lambda, "id": args.id_lambda},
                "latents": tr.settings["latents"], "pack": tr.meta.get("name")}
    with index_lock(args.out):  # other trainings may finish into the same folder: read, add, write under a lock
        index_path, index = output_index(args.out, args.pack, tr.meta, tr.generator_hash)
        entry = write_mapper(tr.mapper.cpu().eval(), args.out, prompt, tr.gen.n_latent, index_path, index,
                             {"training": training})
    if ckpt.is_file():
        ckpt.unlink()
    last = {k: float(v) for k, v in report.last.items() if k != "step"} if report.last else {}
    done = tr.step - first
    summary = {"steps": args.steps, **last, "seconds": round(seconds, 3),
               "stepsPerS": round(done / seconds, 3) if seconds > 0 and done else None,
               "totalSeconds": round(time.perf_counter() - start, 3), "name": prompt, "slug": slug,
               "out": str(Path(args.out) / entry["file"]), "index": str(index_path),
               **({"preview": preview} if preview else {})}
    if args.progress_jsonl:
        report.emit("done", **summary)
    else:
        print(f"trained mapper '{prompt}' ({', '.join(k for k, v in levels.items() if v)}) for {args.steps} steps "
              f"({summary['stepsPerS']} steps/s) -> {summary['out']}")
    return 0
