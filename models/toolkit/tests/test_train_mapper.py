"""`train-mapper` (StyleCLIP latent mapper training) and its Ranger optimizer.

The oracle re-states the official coach (mapper/training/coach.py, mapper/latent_mappers.py,
mapper/training/ranger.py, criteria/clip_loss.py, criteria/id_loss.py) over the ORIGINAL modules:
the rosinality generator built from the checkpoint's g_ema, OpenAI-layout CLIP from its state_dict,
the ArcFace Backbone from its state_dict (fixtures and loss modules shared with test_optimize), and
the mapper / Ranger written out here as the official files define them. The toolkit goes through
the converted pack (ONNX graphs, tokenizer.json, pack.json, identity/*.npy)."""

import errno
import json
import math
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim import Optimizer

from conftest import REPO, interrupt_at_first_step, one_line_error, SMALL_G, run_ort
from styleclip_toolkit.bpe import SimpleTokenizer, tokenize
from styleclip_toolkit.cli import main
from styleclip_toolkit.image_io import to_uint8_strip
from styleclip_toolkit.pack import onnx_initializers
from styleclip_toolkit.ranger import Ranger
from styleclip_toolkit.train_mapper import (FOLDER_INDEX, STEP_SCALE, MapperTraining, build, checkpoint_path, resume,
                                            sample_latents, save_checkpoint)
from test_optimize import (PROMPT, OfficialClipLoss, OfficialIdLoss, fitted_slope, originals,  # noqa: F401 (fixtures)
                           pack)

TINY = REPO / "models/packs/tiny"


# ---------------------------------------------------------------------------------------------
# The official modules and loop, re-stated


class OfficialEqualLinear(nn.Module):
    def __init__(self, in_dim, out_dim, lr_mul):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale, self.lr_mul = (1 / math.sqrt(in_dim)) * lr_mul, lr_mul

    def forward(self, x):  # activation='fused_lrelu'; StyleCLIP's fused_leaky_relu, 3-D input
        out = F.linear(x, self.weight * self.scale)
        bias = self.bias * self.lr_mul
        return F.leaky_relu(out + bias.view(1, 1, bias.shape[0]), negative_slope=0.2) * 2 ** 0.5


class OfficialPixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class OfficialMapper(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.mapping = nn.Sequential(OfficialPixelNorm(), *[OfficialEqualLinear(dim, dim, 0.01) for _ in range(4)])

    def forward(self, x):
        return self.mapping(x)


class OfficialLevelsMapper(nn.Module):
    def __init__(self, no_coarse, no_medium, no_fine, dim):
        super().__init__()
        self.no = (no_coarse, no_medium, no_fine)
        if not no_coarse:
            self.course_mapping = OfficialMapper(dim)
        if not no_medium:
            self.medium_mapping = OfficialMapper(dim)
        if not no_fine:
            self.fine_mapping = OfficialMapper(dim)

    def forward(self, x):
        parts = [x[:, :4, :], x[:, 4:8, :], x[:, 8:, :]]
        mods = ("course_mapping", "medium_mapping", "fine_mapping")
        return torch.cat([torch.zeros_like(p) if no else getattr(self, m)(p)
                          for p, no, m in zip(parts, self.no, mods)], dim=1)


class OfficialRanger(Optimizer):
    """ranger.py's step, line by line (modern keyword forms of add_/addcmul_/addcdiv_)."""

    def __init__(self, params, lr, alpha=0.5, k=6, N_sma_threshhold=5, betas=(.95, 0.999), eps=1e-5, weight_decay=0):
        super().__init__(params, dict(lr=lr, alpha=alpha, k=k, step_counter=0, betas=betas,
                                      N_sma_threshhold=N_sma_threshhold, eps=eps, weight_decay=weight_decay))
        self.N_sma_threshhold, self.alpha, self.k = N_sma_threshhold, alpha, k
        self.radam_buffer = [[None, None, None] for _ in range(10)]
        self.gc_gradient_threshold = 1

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data.float()
                p_data_fp32 = p.data.float()
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p_data_fp32)
                    state["exp_avg_sq"] = torch.zeros_like(p_data_fp32)
                    state["slow_buffer"] = torch.empty_like(p.data)
                    state["slow_buffer"].copy_(p.data)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                beta1, beta2 = group["betas"]
                if grad.dim() > self.gc_gradient_threshold:
                    grad.add_(-grad.mean(dim=tuple(range(1, grad.dim())), keepdim=True))
                state["step"] += 1
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                buffered = self.radam_buffer[int(state["step"] % 10)]
                if state["step"] == buffered[0]:
                    N_sma, step_size = buffered[1], buffered[2]
                else:
                    buffered[0] = state["step"]
                    beta2_t = beta2 ** state["step"]
                    N_sma_max = 2 / (1 - beta2) - 1
                    N_sma = N_sma_max - 2 * state["step"] * beta2_t / (1 - beta2_t)
                    buffered[1] = N_sma
                    if N_sma > self.N_sma_threshhold:
                        step_size = math.sqrt((1 - beta2_t) * (N_sma - 4) / (N_sma_max - 4) * (N_sma - 2) / N_sma
                                              * N_sma_max / (N_sma_max - 2)) / (1 - beta1 ** state["step"])
                    else:
                        step_size = 1.0 / (1 - beta1 ** state["step"])
                    buffered[2] = step_size
                if group["weight_decay"] != 0:
                    p_data_fp32.add_(p_data_fp32, alpha=-group["weight_decay"] * group["lr"])
                if N_sma > self.N_sma_threshhold:
                    denom = exp_avg_sq.sqrt().add_(group["eps"])
                    p_data_fp32.addcdiv_(exp_avg, denom, value=-step_size * group["lr"])
                else:
                    p_data_fp32.add_(exp_avg, alpha=-step_size * group["lr"])
                p.data.copy_(p_data_fp32)
                if state["step"] % group["k"] == 0:
                    slow_p = state["slow_buffer"]
                    slow_p.add_(p.data - slow_p, alpha=self.alpha)
                    p.data.copy_(slow_p)


def official_training(originals, text, latents, steps, seed, batch=2, optim_name="ranger", lr=0.5,
                      no_fine=False, id_lambda=0.1, clip_lambda=1.0, latent_l2_lambda=0.8):
    """The coach's loop (W+ LevelsMapper), with the documented seeding: global RNG seeded, mapper
    built, then one torch.randperm per epoch (DataLoader shuffle, drop_last)."""
    gen = originals["gen"]
    torch.manual_seed(seed)
    mapper = OfficialLevelsMapper(False, False, no_fine, SMALL_G["style_dim"])
    params = list(mapper.parameters())
    optimizer = torch.optim.Adam(params, lr=lr) if optim_name == "adam" else OfficialRanger(params, lr=lr)
    clip_loss, id_loss, l2 = OfficialClipLoss(originals["clip"], SMALL_G["size"]), OfficialIdLoss(originals["facenet"]), nn.MSELoss()

    def batches():
        while True:
            perm = torch.randperm(latents.shape[0])
            for b in range(latents.shape[0] // batch):
                yield latents[perm[b * batch:(b + 1) * batch]]

    losses, data = [], batches()
    mapper.train()
    for _ in range(steps):
        optimizer.zero_grad()
        w = next(data)
        with torch.no_grad():
            x = gen(w)
        w_hat = w + 0.1 * mapper(w)
        x_hat = gen(w_hat)
        loss = 0.0
        if id_lambda > 0:
            loss = id_loss(x_hat, x)[0] * id_lambda
        if clip_lambda > 0:
            loss += clip_loss(x_hat, text).mean() * clip_lambda
        if latent_l2_lambda > 0:
            loss += l2(w_hat, w) * latent_l2_lambda
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return mapper, losses


# ---------------------------------------------------------------------------------------------
# A pack converted from random official-layout checkpoints


@pytest.fixture(scope="module")
def latents_file(originals, tmp_path_factory):
    """5 W+ latents (odd: the last incomplete batch of each epoch is dropped)."""
    g = torch.Generator().manual_seed(8)
    latents = originals["latent_avg"] + 0.7 * torch.randn(5, 10, SMALL_G["style_dim"], generator=g)
    path = tmp_path_factory.mktemp("latents") / "latents.npy"
    np.save(path, latents.numpy())
    return path


def mapper_delta(mapper, w):
    with torch.no_grad():
        return mapper(w)


@pytest.mark.parametrize("optim_name,no_fine,steps", [("ranger", False, 7), ("adam", True, 3)])
def test_steps_equal_the_official_coach(originals, pack, latents_file, optim_name, no_fine, steps):
    """7 Ranger steps cover its momentum-SGD steps (1–5), the first rectified Adam step (6) and the
    first Lookahead sync (6); Adam without the fine level shows a disabled level."""
    levels = {"coarse": True, "medium": True, "fine": not no_fine}
    tr = build(pack, PROMPT, levels, batch=2, optimizer=optim_name, seed=21, latents=latents_file)
    history = []
    tr.run(steps, on_step=history.append)
    text = tokenize(SimpleTokenizer(pack.parent / "bpe.txt.gz"), [PROMPT], 77)
    latents = torch.from_numpy(np.load(latents_file))
    ref, ref_losses = official_training(originals, text, latents, steps, 21, optim_name=optim_name, no_fine=no_fine)
    probe = originals["latent_avg"] + 0.5 * torch.randn(3, 10, SMALL_G["style_dim"], generator=torch.Generator().manual_seed(2))
    got_sd, want_sd = tr.mapper.state_dict(), ref.state_dict()
    assert list(got_sd) == list(want_sd)
    weight_delta = max((got_sd[k] - want_sd[k]).abs().max().item() for k in got_sd)
    out_delta = (mapper_delta(tr.mapper, probe) - mapper_delta(ref, probe)).abs().max().item()
    print(f"{optim_name}, {steps} steps: max |dθ| {weight_delta:.3g}, max |dM(w)| {out_delta:.3g}, "
          f"losses {[round(float(h['loss']), 6) for h in history]}")
    assert weight_delta <= 1e-4 and out_delta <= 1e-5
    np.testing.assert_allclose([float(h["loss"]) for h in history], ref_losses, rtol=1e-5)
    torch.manual_seed(21)  # the official initial weights: it moved, so the comparison means something
    init = OfficialLevelsMapper(False, False, no_fine, SMALL_G["style_dim"])
    assert (mapper_delta(tr.mapper, probe) - mapper_delta(init, probe)).abs().max() > 100 * max(out_delta, 1e-7)
    if no_fine:
        assert mapper_delta(tr.mapper, probe)[:, 8:].abs().max() == 0


def test_ranger_equals_the_official_update_rule():
    """Both regimes, two Lookahead syncs, a 2-D weight (centralized) and a 1-D bias (not)."""
    torch.manual_seed(0)
    w0, b0 = torch.randn(6, 5), torch.randn(6)
    target = torch.randn(6, 5)
    runs = []
    for cls in (Ranger, OfficialRanger):
        w, b = nn.Parameter(w0.clone()), nn.Parameter(b0.clone())
        opt = cls([w, b], lr=0.05)
        for _ in range(13):
            opt.zero_grad()
            (((w - target) ** 2).sum() + (b ** 3).sum()).backward()
            opt.step()
        runs.append((w.detach(), b.detach()))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert (runs[0][0] - w0).abs().max() > 0.1


def test_latents_from_an_official_pt_file(tmp_path):
    from styleclip_toolkit.train_mapper import load_latents

    w = torch.randn(3, 10, 32)
    torch.save(w, tmp_path / "train_faces.pt")
    np.save(tmp_path / "train_faces.npy", w.numpy())
    assert torch.equal(load_latents(tmp_path / "train_faces.pt", 10, 32), w)
    assert torch.equal(load_latents(tmp_path / "train_faces.npy", 10, 32), w)


def test_sampled_latents_are_truncated_toward_w_avg(originals):
    w = sample_latents(originals["gen"], originals["latent_avg"], 3, seed=7)
    z = torch.from_numpy(np.random.RandomState(7).randn(3, SMALL_G["style_dim"]).astype(np.float32))
    with torch.no_grad():
        want = originals["latent_avg"] + 0.7 * (originals["gen"].style(z) - originals["latent_avg"])
    torch.testing.assert_close(w, want)


# ---------------------------------------------------------------------------------------------
# Resume, export, the CLI


@pytest.mark.parametrize("optimizer", ["ranger", "adam"])
def test_resumed_training_equals_an_uninterrupted_one(tmp_path, optimizer):
    def fresh():
        return build(TINY, "curly hair", batch=3, optimizer=optimizer, seed=5, dataset_size=7, id_lambda=0)

    whole = fresh()
    whole.run(8)
    first = fresh()
    first.run(3)
    save_checkpoint(tmp_path / "c.npz", first)
    second = fresh()
    resume(tmp_path / "c.npz", second)
    assert second.step == 3
    second.run(8)
    for k, v in whole.mapper.state_dict().items():
        assert torch.equal(v, second.mapper.state_dict()[k]), k
    a, b = whole.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    assert all(torch.equal(a[i][k], b[i][k]) if torch.is_tensor(a[i][k]) else a[i][k] == b[i][k] for i in a for k in a[i])
    assert torch.equal(whole.order.perm, second.order.perm) and whole.order.cursor == second.order.cursor


def test_checkpoint_from_other_settings_is_refused(tmp_path):
    tr = build(TINY, "curly hair", batch=2, seed=5, dataset_size=4, id_lambda=0)
    tr.run(1)
    save_checkpoint(tmp_path / "c.npz", tr)
    other = build(TINY, "curly hair", batch=2, seed=5, dataset_size=4, id_lambda=0, lr=0.1)
    with pytest.raises(Exception, match=r"other settings \(lr 0.5 in the checkpoint, 0.1 now\)"):
        resume(tmp_path / "c.npz", other)


def test_resume_past_the_requested_steps_is_refused(tmp_path, capsys):
    tr = build(TINY, "x", batch=2, seed=0, dataset_size=2, id_lambda=0)
    tr.run(2)
    save_checkpoint(checkpoint_path(tmp_path, "x"), tr)
    err = one_line_error(capsys, ["train-mapper", "--pack", str(TINY), "--prompt", "x", "--id-lambda", "0", "--dataset-size", "2",
                          "--steps", "1", "--resume", "--device", "cpu", "--progress-jsonl", "--out", str(tmp_path)])
    assert "is at step 2, past --steps 1" in err


def test_clip_loss_decreases_on_the_tiny_pack():
    """CLIP loss of 8 fixed latents, every 4 steps. The tiny pack's untrained CLIP gives gradients
    so small that the official L2 weight and Ranger's eps (1e-5) hold the mapper in place for many
    steps; Adam with the CLIP loss alone shows the direction within seconds."""
    tr = build(TINY, "curly hair", batch=4, optimizer="adam", seed=1, id_lambda=0, l2_lambda=0)
    fixed = tr.batch(torch.arange(8))

    def clip_at():
        with torch.no_grad():
            return tr.clip_loss(tr.gen(fixed + STEP_SCALE * tr.mapper(fixed))).mean().item()

    values = [clip_at()]
    for _ in range(6):
        tr.run(tr.step + 4)
        values.append(clip_at())
    assert values[-1] < values[0] and fitted_slope(values) < 0


def test_cli_exports_the_trained_mapper_into_a_mapper_folder(tmp_path, capsys):
    folder = tmp_path / "server-mappers"
    argv = ["train-mapper", "--pack", str(TINY), "--prompt", "Curly hair", "--steps", "3", "--batch", "2",
            "--no-fine", "--seed", "4", "--dataset-size", "6", "--log-every", "2", "--checkpoint-every", "2",
            "--device", "cpu", "--progress-jsonl", "--out", str(folder)]
    assert main(argv) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["start", "step", "checkpoint", "step", "done"]
    assert [e["step"] for e in events[1:4]] == [2, 2, 3]
    assert set(events[1]) >= {"step", "steps", "loss", "clip", "l2", "id"}
    assert events[-1]["out"] == str(folder / "mappers/curly_hair.onnx")
    index = json.loads((folder / "mappers.json").read_text())
    meta = json.loads((TINY / "pack.json").read_text())
    assert index["format"] == "styleclip-mappers" and index["pack"]["name"] == "tiny"
    assert index["pack"]["numWs"] == meta["numWs"] and len(index["pack"]["generator"]) == 64
    entry = index["mappers"][0]
    assert {k: entry[k] for k in ("name", "slug", "file", "levels")} == {
        "name": "Curly hair", "slug": "curly_hair", "file": "mappers/curly_hair.onnx",
        "levels": {"coarse": True, "medium": True, "fine": False}}
    assert entry["training"]["steps"] == 3 and entry["training"]["optimizer"] == "ranger"
    assert sorted(p.name for p in (folder / "mappers").iterdir()) == ["curly_hair.onnx"]  # checkpoint gone, no temp

    # the same run in-process gives the same weights; onnxruntime-node runs the graph like the module
    tr = build(TINY, "Curly hair", {"coarse": True, "medium": True, "fine": False}, batch=2, seed=4, dataset_size=6)
    tr.run(3)
    inits = onnx_initializers(folder / entry["file"])
    for k, v in tr.mapper.state_dict().items():
        np.testing.assert_array_equal(inits[k], v.numpy())
    wplus = (tr.latents[:3, None] + 0.3 * torch.randn(3, meta["numWs"], meta["wDim"])).float()
    got = run_ort(folder / entry["file"], tmp_path / "ort", wplus=wplus.numpy())["delta"]
    want = mapper_delta(tr.mapper, wplus).numpy()
    print(f"ONNX vs torch mapper: max |d| {np.abs(got - want).max():.3g}")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    # a second mapper joins the folder's index
    assert main([*argv[:4], "purple hair", *argv[5:]]) == 0
    index = json.loads((folder / "mappers.json").read_text())
    assert [m["slug"] for m in index["mappers"]] == ["curly_hair", "purple_hair"]


def test_cli_into_the_pack_replaces_its_entry(tmp_path, capsys):
    pack = tmp_path / "tiny"
    shutil.copytree(TINY, pack)
    before = json.loads((pack / "pack.json").read_text())
    assert main(["train-mapper", "--pack", str(pack), "--prompt", "curly hair", "--steps", "1", "--id-lambda", "0",
                 "--dataset-size", "2", "--device", "cpu", "--out", str(pack)]) == 0
    assert "trained mapper 'curly hair'" in capsys.readouterr().out
    after = json.loads((pack / "pack.json").read_text())
    assert [m["slug"] for m in after["mappers"]] == ["purple_hair", "curly_hair"]
    assert after["mappers"][1]["levels"] == {"coarse": True, "medium": True, "fine": True}
    assert {k: v for k, v in after.items() if k != "mappers"} == {k: v for k, v in before.items() if k != "mappers"}
    assert not list(pack.glob(".*.tmp")) and not list((pack / "mappers").glob(".*"))


def test_one_line_errors(tmp_path, capsys, small_pack):
    base = ["train-mapper", "--pack", str(TINY), "--device", "cpu", "--out", str(tmp_path / "m")]
    assert "--prompt is empty" in one_line_error(capsys, base + ["--prompt", "  "])
    assert "--steps must be in 1..1000000" in one_line_error(capsys, base + ["--prompt", "x", "--steps", "0"])
    assert "--steps must be in" in one_line_error(capsys, base + ["--prompt", "x", "--steps", "2000000"])
    assert "nothing to train" in one_line_error(capsys, base + ["--prompt", "x", "--no-coarse", "--no-medium", "--no-fine"])
    assert "not all 0" in one_line_error(capsys, base + ["--prompt", "x", "--clip-lambda", "0", "--l2-lambda", "0",
                                                 "--id-lambda", "0"])
    no_clip = ["train-mapper", "--pack", str(small_pack), "--prompt", "x", "--device", "cpu", "--out", str(tmp_path / "m")]
    assert "needs the pack's CLIP" in one_line_error(capsys, no_clip)
    no_id = tmp_path / "no_id"
    shutil.copytree(TINY, no_id)
    meta = json.loads((no_id / "pack.json").read_text())
    del meta["identity"]
    (no_id / "pack.json").write_text(json.dumps(meta))
    err = one_line_error(capsys, ["train-mapper", "--pack", str(no_id), "--prompt", "x", "--device", "cpu", "--out", str(no_id)])
    assert "--id-lambda 0.1 needs ArcFace weights" in err and "--id-lambda 0" in err
    np.save(tmp_path / "bad.npy", np.zeros((4, 7, 32), np.float32))
    assert "this pack takes [N, 10, 32]" in one_line_error(capsys, base + ["--prompt", "x", "--latents", str(tmp_path / "bad.npy")])
    torch.save({"w": torch.zeros(4, 10, 32)}, tmp_path / "bad.pt")
    assert "must hold one finite float tensor" in one_line_error(capsys, base + ["--prompt", "x", "--latents", str(tmp_path / "bad.pt")])
    other = tmp_path / "other"
    shutil.copytree(small_pack, other)
    assert "another generator" in one_line_error(capsys, base[:-1] + [str(other), "--prompt", "x", "--id-lambda", "0",
                                                               "--steps", "1", "--dataset-size", "2"])


def test_disk_full_is_one_line_and_leaves_nothing_half_written(tmp_path, capsys, monkeypatch):
    import pathlib

    import styleclip_toolkit.convert_mapper as convert_mapper

    folder = tmp_path / "m"
    common = ["train-mapper", "--pack", str(TINY), "--id-lambda", "0", "--dataset-size", "2", "--device", "cpu",
              "--progress-jsonl", "--out", str(folder)]
    assert main([*common, "--prompt", "purple hair", "--steps", "1"]) == 0  # the folder already holds one mapper
    capsys.readouterr()
    index = (folder / "mappers.json").read_bytes()
    argv = [*common, "--prompt", "curly hair", "--steps", "2", "--checkpoint-every", "1"]

    def full_line(path):
        return f"error: no space left on device while writing {path}: free some space and run again\n"

    def full_graph(module, args, path, *rest, **kw):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(convert_mapper, "export_onnx", full_graph)
    assert one_line_error(capsys, argv) == full_line(folder / "mappers/curly_hair.onnx")
    assert (folder / "mappers.json").read_bytes() == index
    assert sorted(p.name for p in (folder / "mappers").iterdir()) == ["curly_hair.train.npz", "purple_hair.onnx"]  # the last checkpoint, no temporary file
    monkeypatch.undo()

    write_text = pathlib.Path.write_text

    def full_index(self, text, *args, **kw):
        if self.name != f".{FOLDER_INDEX}.tmp":
            return write_text(self, text, *args, **kw)
        write_text(self, text[:10])
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(pathlib.Path, "write_text", full_index)
    assert one_line_error(capsys, argv) == full_line(folder / FOLDER_INDEX)
    assert (folder / "mappers.json").read_bytes() == index
    assert not list(folder.glob(".*")) and not list((folder / "mappers").glob(".*"))
    monkeypatch.undo()

    def full_savez(f, **arrays):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_savez)
    shutil.rmtree(folder)
    assert one_line_error(capsys, argv) == full_line(folder / "mappers/curly_hair.train.npz")
    assert not any(p.is_file() for p in folder.rglob("*"))


def test_sigterm_checkpoints_and_resume_equals_an_uninterrupted_run(tmp_path, capsys):
    folder, whole = tmp_path / "m", tmp_path / "whole"
    common = ["--pack", str(TINY), "--prompt", "curly hair", "--id-lambda", "0.05", "--batch", "2", "--seed", "3",
              "--dataset-size", "5", "--checkpoint-every", "0", "--device", "cpu"]
    code, err, events = interrupt_at_first_step(
        ["train-mapper", *common, "--steps", "100000", "--log-every", "1", "--out", str(folder)], timeout=120)
    assert code == 130 and err.strip() == "error: interrupted"
    cancelled = events[-1]
    assert events[0]["event"] == "start" and cancelled["event"] == "cancelled" and cancelled["step"] >= 1
    ckpt = checkpoint_path(folder, "curly_hair")
    assert cancelled["checkpoint"] == str(ckpt) and ckpt.is_file() and not (folder / "mappers.json").exists()

    steps = str(cancelled["step"] + 2)
    assert main(["train-mapper", *common, "--steps", steps, "--resume", "--progress-jsonl", "--out", str(folder)]) == 0
    start = json.loads(capsys.readouterr().out.splitlines()[0])
    assert start["resumed"] is True and start["step"] == cancelled["step"]
    assert main(["train-mapper", *common, "--steps", steps, "--out", str(whole)]) == 0
    got, want = onnx_initializers(folder / "mappers/curly_hair.onnx"), onnx_initializers(whole / "mappers/curly_hair.onnx")
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in got)
    assert not ckpt.exists()


def test_index_updates_are_serialised_by_a_folder_lock(tmp_path):
    import fcntl

    from styleclip_toolkit.train_mapper import index_lock

    with index_lock(tmp_path):
        fd = os.open(tmp_path / "mappers", os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    assert list((tmp_path / "mappers").iterdir()) == []  # no lock file left


# ---------------------------------------------------------------------------------------------
# Supervision: previews, a lost supervisor, a fresh start


def orphan_after(monkeypatch, steps):
    """os.getppid() names another parent once `steps` steps are done: the supervisor was SIGKILLed."""
    real_ppid, real_step, done = os.getppid(), MapperTraining.train_step, []

    def step(self):
        done.append(1)
        return real_step(self)

    monkeypatch.setattr(MapperTraining, "train_step", step)
    monkeypatch.setattr(os, "getppid", lambda: real_ppid if len(done) < steps else real_ppid + 1)


def read_png(path) -> np.ndarray:
    """uint8 [H, W, 3] of an image_io.png_bytes file (RGB, unfiltered rows)."""
    data = path.read_bytes()
    chunks, at = {}, 8
    while at < len(data):
        (size,), tag = struct.unpack(">I", data[at:at + 4]), data[at + 4:at + 8]
        chunks[tag] = chunks.get(tag, b"") + data[at + 8:at + 8 + size]
        at += 12 + size
    w, h = struct.unpack(">II", chunks[b"IHDR"][:8])
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, 1 + 3 * w)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(h, w, 3)


def events_of(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


RUN = ["train-mapper", "--pack", str(TINY), "--prompt", "curly hair", "--id-lambda", "0.05", "--batch", "2",
       "--seed", "3", "--dataset-size", "5", "--checkpoint-every", "0", "--log-every", "1", "--device", "cpu",
       "--progress-jsonl"]


def test_previews_leave_training_and_resume_bit_identical(tmp_path, capsys, monkeypatch):
    preview = ["--preview-every-s", "0", "--preview-size", "16"]
    plain, whole, parts = tmp_path / "plain", tmp_path / "whole", tmp_path / "parts"
    assert main([*RUN, "--steps", "4", "--out", str(plain)]) == 0
    assert all("preview" not in e for e in events_of(capsys))

    assert main([*RUN, "--steps", "4", *preview, "--preview", str(tmp_path / "whole.png"), "--out", str(whole)]) == 0
    events = events_of(capsys)
    assert [e.get("preview") for e in events if e["event"] in ("step", "done")] == [str(tmp_path / "whole.png")] * 5

    with monkeypatch.context() as m:
        orphan_after(m, 2)
        assert main([*RUN, "--steps", "4", *preview, "--preview", str(tmp_path / "parts.png"), "--out", str(parts)]) == 130
    assert events_of(capsys)[-1] == {"event": "cancelled", "step": 2,
                                     "checkpoint": str(checkpoint_path(parts, "curly_hair"))}
    assert main([*RUN, "--steps", "4", *preview, "--preview", str(tmp_path / "parts.png"), "--resume",
                 "--out", str(parts)]) == 0
    assert events_of(capsys)[0]["step"] == 2

    got = [onnx_initializers(d / "mappers/curly_hair.onnx") for d in (plain, whole, parts)]
    assert all(g.keys() == got[0].keys() and all(np.array_equal(g[k], got[0][k]) for k in g) for g in got)

    # the last preview: G(w) and G(w + 0.1·M(w)) of the first training latent, area-downscaled, side by side
    tr = build(TINY, "curly hair", batch=2, seed=3, dataset_size=5, id_lambda=0.05)
    tr.run(4)
    with torch.no_grad():
        w = tr.latents[:1, None].expand(1, tr.gen.n_latent, -1)
        images = tr.gen(torch.cat([w, w + STEP_SCALE * tr.mapper(w)]))
    want = to_uint8_strip(F.interpolate(images, size=(16, 16), mode="area").numpy())
    for name in ("whole.png", "parts.png"):
        png = read_png(tmp_path / name)
        assert png.shape == (16, 32, 3)
        np.testing.assert_array_equal(png, want)
    assert not list(tmp_path.glob(".*"))  # no temporary preview left


def test_previews_come_at_the_first_step_then_every_s(tmp_path, capsys):
    from styleclip_toolkit.train_mapper import _Reporter

    now = [0.0]
    report = _Reporter(True, 2, 9, tmp_path / "p.png", 8, 120.0, clock=lambda: now[0])
    report.render = lambda size: torch.zeros(2, 3, size, size)
    for step, t in zip(range(1, 10), (0, 0, 50, 100, 119, 130, 140, 200, 260)):
        now[0] = float(t)
        report({"step": step, **{k: torch.zeros(()) for k in ("loss", "clip", "l2", "id")}})
    steps = [(e["step"], "preview" in e) for e in events_of(capsys)]
    # reported: every 2nd step and the last; previews at the first, then once 120 s passed since the last
    assert steps == [(2, True), (4, False), (6, True), (8, False), (9, True)]
    assert read_png(tmp_path / "p.png").shape == (8, 16, 3)


def test_preview_option_errors(tmp_path, capsys):
    base = [*RUN, "--steps", "1", "--out", str(tmp_path / "m")]
    assert "previews are .png files" in one_line_error(capsys, base + ["--preview", str(tmp_path / "p.jpg")])
    assert "--preview-size must be >= 8, got 7" in one_line_error(capsys, base + ["--preview-size", "7"])
    assert "--preview-every-s must be >= 0, got -1" in one_line_error(capsys, base + ["--preview-every-s", "-1"])
    assert not (tmp_path / "m").exists()


def test_an_orphaned_run_checkpoints_and_stops_like_sigterm(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "m"
    orphan_after(monkeypatch, 1)
    assert main([*RUN, "--steps", "3", "--out", str(folder)]) == 130
    out, err = capsys.readouterr()
    ckpt = checkpoint_path(folder, "curly_hair")
    assert json.loads(out.splitlines()[-1]) == {"event": "cancelled", "step": 1, "checkpoint": str(ckpt)}
    assert err == "error: interrupted\n" and ckpt.is_file() and not (folder / "mappers.json").exists()


def test_a_closed_progress_pipe_stops_the_run_like_sigterm(tmp_path):
    """The supervisor's end of stdout closes when it is killed: the run checkpoints and stops."""
    folder = tmp_path / "m"
    code, err, _ = interrupt_at_first_step([*RUN, "--steps", "100000", "--out", str(folder)], timeout=120, close_pipe=True)
    assert code == 130 and err == "error: interrupted\n"
    assert checkpoint_path(folder, "curly_hair").is_file() and not (folder / "mappers.json").exists()


def test_a_fresh_run_deletes_an_older_runs_checkpoint(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "m"
    ckpt = checkpoint_path(folder, "curly_hair")
    older = build(TINY, "curly hair", batch=2, seed=3, dataset_size=5, id_lambda=0.05, lr=0.1)
    older.run(1)
    save_checkpoint(ckpt, older)
    seen = []

    def killed(self):  # the fresh run dies before its first step, with no checkpoint of its own
        seen.append(ckpt.exists())
        raise KeyboardInterrupt

    monkeypatch.setattr(MapperTraining, "train_step", killed)
    assert main([*RUN, "--steps", "2", "--out", str(folder)]) == 130
    assert seen == [False]
    monkeypatch.undo()
    capsys.readouterr()
    assert main([*RUN, "--steps", "2", "--resume", "--out", str(folder)]) == 0  # starts over: not lr 0.1's run
    start = events_of(capsys)[0]
    assert start["resumed"] is False and start["step"] == 0
