"""`optimize` (latent optimization) and `convert-identity`.

The oracle re-states the official loop (optimization/run_optimization.py, criteria/clip_loss.py,
criteria/id_loss.py) over the ORIGINAL modules: the rosinality generator built from the checkpoint's
g_ema, OpenAI-layout CLIP from its state_dict, the ArcFace Backbone from its state_dict. The toolkit
goes through the converted pack (ONNX graphs, tokenizer.json, pack.json, identity/*.npy)."""

import copy
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from conftest import REPO, interrupt_at_first_step, one_line_error, SMALL_G
from styleclip_toolkit.bpe import SimpleTokenizer, make_tiny_vocab, tokenize
from styleclip_toolkit.cli import main
from styleclip_toolkit.clip_model import clip_from_state_dict, tiny_clip_state_dict
from styleclip_toolkit.clip_pack import clip_from_pack, logit_scale_from_pack, prompt_ids
from styleclip_toolkit.convert_clip import convert_clip
from styleclip_toolkit.convert_identity import convert_identity, identity_from_pack, random_identity_state_dict
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.irse import Backbone
from styleclip_toolkit.optimize import Optimization, build
from styleclip_toolkit.stylegan2 import generator_from_state_dict

TINY = REPO / "models/packs/tiny"
PROMPT = "a face with purple hair"
ID_WIDTHS = (16, 16, 32, 32)


# ---------------------------------------------------------------------------------------------
# The official loop, re-stated over the original modules


def official_lr(t, initial_lr, rampdown=0.25, rampup=0.05):
    ramp = min(1, (1 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return initial_lr * ramp * min(1, t / rampup)


class OfficialClipLoss(nn.Module):
    def __init__(self, model, stylegan_size):
        super().__init__()
        self.model = model
        self.upsample = nn.Upsample(scale_factor=7)
        self.avg_pool = nn.AvgPool2d(kernel_size=stylegan_size // 32)

    def clip_forward(self, image, text):  # OpenAI's CLIP.forward
        image_features = self.model.encode_image(image)
        text_features = self.model.encode_text(text)
        image_features = image_features / image_features.norm(dim=1, keepdim=True)
        text_features = text_features / text_features.norm(dim=1, keepdim=True)
        logits_per_image = self.model.logit_scale.exp() * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()

    def forward(self, image, text):
        image = self.avg_pool(self.upsample(image))
        return 1 - self.clip_forward(image, text)[0] / 100


class OfficialIdLoss(nn.Module):
    def __init__(self, facenet):
        super().__init__()
        self.facenet = facenet.eval()
        self.pool = nn.AdaptiveAvgPool2d((256, 256))
        self.face_pool = nn.AdaptiveAvgPool2d((112, 112))

    def extract_feats(self, x):
        if x.shape[2] != 256:
            x = self.pool(x)
        return self.facenet(self.face_pool(x[:, :, 35:223, 32:220]))

    def forward(self, y_hat, y):
        y_feats = self.extract_feats(y).detach()
        y_hat_feats = self.extract_feats(y_hat)
        loss, count = 0, 0
        for i in range(y.shape[0]):
            loss += 1 - y_hat_feats[i].dot(y_feats[i])
            count += 1
        return loss / count, 0


def official_optimization(g_ema, clip_loss, text_inputs, latent_code_init, steps, lr, l2_lambda, id_lambda,
                          id_loss=None, mode="edit"):
    with torch.no_grad():
        img_orig = g_ema(latent_code_init)
    latent = latent_code_init.detach().clone()
    latent.requires_grad = True
    optimizer = torch.optim.Adam([latent], lr=lr)
    losses = []
    for i in range(steps):
        optimizer.param_groups[0]["lr"] = official_lr(i / steps, lr)
        img_gen = g_ema(latent)
        c_loss = clip_loss(img_gen, text_inputs)
        i_loss = id_loss(img_gen, img_orig)[0] if id_lambda > 0 else 0
        if mode == "edit":
            loss = c_loss + l2_lambda * ((latent_code_init - latent) ** 2).sum() + id_lambda * i_loss
        else:
            loss = c_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return latent.detach(), losses


# ---------------------------------------------------------------------------------------------
# A pack converted from random official-layout checkpoints


@pytest.fixture(scope="module")
def originals(small_checkpoint):
    """The original modules: generator, a 224 px CLIP (so the official stylegan_size // 32 pool
    applies as written), an ArcFace of IR-SE-50 depth with narrow widths."""
    gen = generator_from_state_dict(small_checkpoint["g_ema"])
    clip_sd = tiny_clip_state_dict(seed=4, image_size=224, patch=32)
    clip_sd["logit_scale"] = torch.tensor(math.log(60.0))  # not 100: the loss must use the checkpoint's scale
    id_sd = random_identity_state_dict(seed=5, widths=ID_WIDTHS, embedding_size=32)
    facenet = Backbone(112, 50, "ir_se", drop_ratio=0.6, widths=ID_WIDTHS, embedding_size=32)
    facenet.load_state_dict(id_sd)
    return {"gen": gen, "clip_sd": clip_sd, "clip": clip_from_state_dict(clip_sd), "id_sd": id_sd,
            "facenet": facenet.eval(), "latent_avg": small_checkpoint["latent_avg"]}


@pytest.fixture(scope="module")
def pack(originals, small_pack, tmp_path_factory):
    work = tmp_path_factory.mktemp("opt")
    pack = work / "pack"
    shutil.copytree(small_pack, pack)
    torch.save(originals["clip_sd"], work / "clip.pt")
    make_tiny_vocab(work / "bpe.txt.gz")
    convert_clip(work / "clip.pt", work / "bpe.txt.gz", pack)
    torch.save(originals["id_sd"], work / "arcface.pth")
    convert_identity(work / "arcface.pth", pack)
    return pack


def reference_run(originals, pack, w0, steps, l2_lambda, id_lambda, mode="edit"):
    tokenizer = SimpleTokenizer(pack.parent / "bpe.txt.gz")
    text = tokenize(tokenizer, [PROMPT], 77)
    clip_loss = OfficialClipLoss(originals["clip"], SMALL_G["size"])
    id_loss = OfficialIdLoss(originals["facenet"])
    return official_optimization(originals["gen"], clip_loss, text, w0, steps, 0.1, l2_lambda, id_lambda, id_loss, mode)


def seed_start(originals, seed, psi=0.7):
    z = torch.from_numpy(np.random.RandomState(seed).randn(SMALL_G["style_dim"]).astype(np.float32))[None]
    with torch.no_grad():
        w = originals["gen"].style(z)
    avg = originals["latent_avg"]
    return (avg + psi * (w - avg))[:, None].repeat(1, originals["gen"].n_latent, 1)


@pytest.mark.parametrize("id_lambda", [0.0, 0.5])
def test_five_steps_equal_the_official_loop(originals, pack, id_lambda):
    opt = build(pack, PROMPT, seed=11, with_identity=id_lambda > 0)
    w0 = seed_start(originals, 11)
    torch.testing.assert_close(opt.w0, w0, rtol=0, atol=1e-6)
    history = []
    got = opt.run(5, 0.1, l2_lambda=0.008, id_lambda=id_lambda, on_step=history.append)
    want, want_losses = reference_run(originals, pack, w0, 5, 0.008, id_lambda)
    delta = (got - want).abs().max().item()
    print(f"max |dW| after 5 steps, id_lambda {id_lambda}: {delta:.3g}")
    assert delta <= 1e-4
    assert (got - w0).abs().max() > 0.1  # it moved (lr 0.1 steps), so the comparison means something
    np.testing.assert_allclose([h["loss"] for h in history], want_losses, rtol=1e-5)
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5]
    if id_lambda:
        assert history[0]["id"] == pytest.approx(0, abs=1e-6) and history[-1]["id"] > 1e-5


def test_five_steps_equal_the_official_loop_in_float64(originals, pack):
    """Both sides in float64, so the agreement does not rest on both rounding alike: Adam magnifies a
    float32 rounding difference in the gradient (2e-7 in W) to about 1e-2 within three steps here
    when the ID loss is on."""
    from styleclip_toolkit.optim_losses import ClipLoss, IdLoss
    from styleclip_toolkit.optimize import Optimization

    tk = build(pack, PROMPT, seed=11, with_identity=True)
    gen, w0 = tk.gen.double(), tk.w0.double()
    clip_loss = ClipLoss(tk.clip_loss.clip.double(), prompt_ids(pack, PROMPT, 77), logit_scale_from_pack(pack),
                         SMALL_G["size"]).double()
    with torch.no_grad():
        opt = Optimization(gen, clip_loss, w0, IdLoss(tk.id_loss.facenet.double(), gen(w0)))
    got = opt.run(5, 0.1, l2_lambda=0.008, id_lambda=0.5)

    ref = {k: copy.deepcopy(v).double() if isinstance(v, nn.Module) else v for k, v in originals.items()}
    with torch.no_grad():  # the scale as the pack stores it (float32 exp), so both sides use one number
        ref["clip"].logit_scale.fill_(math.log(logit_scale_from_pack(pack)))
    want, _ = reference_run(ref, pack, seed_start(originals, 11).double(), 5, 0.008, 0.5)
    delta = (got - want).abs().max().item()
    print(f"max |dW| after 5 steps in float64, id_lambda 0.5: {delta:.3g}")
    assert delta <= 1e-9 and (got - w0).abs().max() > 0.1


def test_free_generation_is_clip_only_from_the_mean_latent(originals, pack):
    opt = build(pack, PROMPT)
    w_avg = originals["latent_avg"].reshape(1, 1, -1).expand(1, originals["gen"].n_latent, -1)
    torch.testing.assert_close(opt.w0, w_avg)
    history = []
    got = opt.run(3, 0.1, l2_lambda=5.0, mode="free_generation", on_step=history.append)
    want, _ = reference_run(originals, pack, w_avg.clone(), 3, 5.0, 0.0, mode="free_generation")
    assert (got - want).abs().max().item() <= 1e-4
    assert all(h["l2"] == 0 and h["loss"] == h["clip"] for h in history)


def test_pack_clip_and_identity_are_the_originals(originals, pack):
    assert logit_scale_from_pack(pack) == pytest.approx(60.0, rel=1e-6)
    clip = clip_from_pack(pack)
    ids = prompt_ids(pack, PROMPT, 77)
    assert torch.equal(ids, tokenize(SimpleTokenizer(pack.parent / "bpe.txt.gz"), [PROMPT], 77))
    faces = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(clip.encode_text(ids), originals["clip"].encode_text(ids), rtol=0, atol=0)
        torch.testing.assert_close(identity_from_pack(pack)(faces), originals["facenet"](faces), rtol=0, atol=0)
    entry = json.loads((pack / "pack.json").read_text())["identity"]
    assert entry == {"format": "irse50", "manifest": "identity/irse50.json", "weights": "identity/irse50.npy",
                     "numLayers": 50, "mode": "ir_se", "inputSize": 112}
    assert np.load(pack / "identity/irse50.npy", allow_pickle=False).dtype == np.float32


def test_normalized_clip_input_clamps_and_standardises(pack):
    from styleclip_toolkit.optim_losses import ClipLoss

    clip = clip_from_pack(pack)
    loss = ClipLoss(clip, prompt_ids(pack, PROMPT, 77), 100.0, 64, "normalized")
    image = torch.full((1, 3, 64, 64), 3.0)  # far outside [-1, 1]: clamps to white
    mean, std = torch.tensor([0.48145466, 0.4578275, 0.40821073]), torch.tensor([0.26862954, 0.26130258, 0.27577711])
    torch.testing.assert_close(loss.pixels(image), ((1 - mean) / std).view(1, 3, 1, 1).expand(1, 3, 224, 224))
    official = ClipLoss(clip, prompt_ids(pack, PROMPT, 77), 100.0, 64, "official")
    torch.testing.assert_close(official.pixels(image), torch.full((1, 3, 224, 224), 3.0))  # the quirk: untouched


# ---------------------------------------------------------------------------------------------
# The tiny pack, the CLI


def fitted_slope(values):
    return np.polyfit(np.arange(len(values)), values, 1)[0]


def test_loss_decreases_on_the_tiny_pack():
    history = []
    build(TINY, "curly hair", seed=3).run(40, 0.1, on_step=history.append)
    losses = [h["loss"] for h in history]
    assert losses[-1] < losses[0] and fitted_slope(losses) < 0
    assert fitted_slope([h["clip"] for h in history]) < 0


def test_cli_writes_w_plus_image_and_json_progress(tmp_path, capsys):
    out, image = tmp_path / "w.npy", tmp_path / "w.png"
    code = main(["optimize", "--pack", str(TINY), "--prompt", "curly hair", "--seed", "3", "--steps", "4",
                 "--device", "cpu", "--log-every", "2", "--progress-jsonl", "--out", str(out), "--image", str(image)])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["start", "step", "step", "done"]
    assert [e["step"] for e in events[1:3]] == [2, 4]
    assert set(events[1]) >= {"step", "steps", "lr", "loss", "clip", "l2", "id"}
    meta = json.loads((TINY / "pack.json").read_text())
    w = np.load(out)
    assert w.dtype == np.float32 and w.shape == (1, meta["numWs"], meta["wDim"])
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # starting again from the result with 0 effective steps (one step has lr 0) keeps it
    code = main(["optimize", "--pack", str(TINY), "--prompt", "curly hair", "--latent", str(out), "--steps", "1",
                 "--device", "cpu", "--out", str(tmp_path / "w2.npy")])
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "w2.npy"), w)


def test_progress_steps_carry_a_small_preview_of_the_step_image(tmp_path, capsys):
    preview = tmp_path / "preview.png"
    code = main(["optimize", "--pack", str(TINY), "--prompt", "curly hair", "--seed", "3", "--steps", "4",
                 "--device", "cpu", "--log-every", "2", "--progress-jsonl", "--out", str(tmp_path / "w.npy"),
                 "--preview", str(preview), "--preview-size", "16"])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e.get("preview") for e in events if e["event"] == "step"] == [str(preview), str(preview)]
    data = preview.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 16 and int.from_bytes(data[20:24], "big") == 16  # IHDR width, height
    assert not list(tmp_path.glob("*.part.png"))
    assert "previews are .png" in one_line_error(capsys, ["optimize", "--pack", str(TINY), "--prompt", "x", "--seed", "1",
                                                  "--out", str(tmp_path / "w.npy"), "--preview", str(tmp_path / "p.jpg")])


def test_one_line_errors(tmp_path, capsys, small_pack):
    no_identity = ["optimize", "--pack", str(small_pack), "--prompt", "x", "--seed", "1", "--out", str(tmp_path / "w.npy")]
    assert "needs ArcFace weights" in one_line_error(capsys, no_identity + ["--id-lambda", "0.01"])
    base = ["optimize", "--pack", str(TINY), "--prompt", "x", "--device", "cpu", "--out", str(tmp_path / "w.npy")]
    assert "needs a start" in one_line_error(capsys, base)
    np.save(tmp_path / "bad.npy", np.zeros((2, 10, 32), np.float32))
    assert "optimize takes one" in one_line_error(capsys, base + ["--latent", str(tmp_path / "bad.npy")])
    np.save(tmp_path / "bad.npy", np.zeros((7, 32), np.float32))
    assert "this pack takes" in one_line_error(capsys, base + ["--latent", str(tmp_path / "bad.npy")])


def test_malicious_identity_checkpoint_is_refused(tmp_path, capsys, pack):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"input_layer.0.weight": Evil()}, tmp_path / "evil.pth")
    err = one_line_error(capsys, ["convert-identity", "--format", "irse50", "--checkpoint", str(tmp_path / "evil.pth"),
                          "--out", str(pack)])
    assert "refusing to load" in err and "builtins.print" in err
    assert "pwned" not in capsys.readouterr().out


def test_identity_rejects_foreign_weights(tmp_path):
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "x.pth")
    (tmp_path / "p").mkdir()
    (tmp_path / "p/pack.json").write_text('{"format": "styleclip-pack", "version": 1}')
    with pytest.raises(ToolkitError, match="not an IR-SE ArcFace state_dict"):
        convert_identity(tmp_path / "x.pth", tmp_path / "p")


def test_tiny_pack_id_loss_runs_from_the_cli(tmp_path, capsys):
    code = main(["optimize", "--pack", str(TINY), "--prompt", "curly hair", "--seed", "3", "--steps", "3",
                 "--id-lambda", "0.5", "--device", "cpu", "--progress-jsonl", "--out", str(tmp_path / "w.npy")])
    assert code == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert done["event"] == "done" and done["id"] > 0
    assert done["loss"] == pytest.approx(done["clip"] + 0.008 * done["l2"] + 0.5 * done["id"], rel=1e-5)


def test_sigterm_cancels_with_a_json_event(tmp_path):
    out = tmp_path / "w.npy"
    code, err, events = interrupt_at_first_step(
        ["optimize", "--pack", str(TINY), "--prompt", "curly hair", "--seed", "1", "--steps", "100000",
         "--log-every", "1", "--device", "cpu", "--out", str(out)])
    assert code == 130 and err.strip() == "error: interrupted"
    assert events[0]["event"] == "start" and events[-1]["event"] == "cancelled" and events[-1]["step"] >= 1
    assert not out.exists()


ORPHAN_RUN = ["optimize", "--pack", str(TINY), "--prompt", "curly hair", "--seed", "1", "--steps", "100000",
              "--log-every", "1", "--device", "cpu", "--progress-jsonl"]


def test_an_orphaned_run_stops_like_sigterm(tmp_path, capsys, monkeypatch):
    """os.getppid() names another parent once the first step is done: the supervisor was SIGKILLed."""
    real_ppid, real_losses, steps = os.getppid(), Optimization.losses, []

    def losses(self, *args):  # once per step
        steps.append(1)
        return real_losses(self, *args)

    monkeypatch.setattr(Optimization, "losses", losses)
    monkeypatch.setattr(os, "getppid", lambda: real_ppid if len(steps) < 2 else real_ppid + 1)
    out = tmp_path / "w.npy"
    assert main([*ORPHAN_RUN, "--out", str(out)]) == 130
    stdout, err = capsys.readouterr()
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [e["event"] for e in events] == ["start", "step", "cancelled"] and events[-1]["step"] == 2
    assert err == "error: interrupted\n" and not out.exists()


def test_a_closed_progress_pipe_stops_the_run_like_sigterm(tmp_path):
    """The supervisor's end of stdout closes when it is killed: the run stops (its result has no reader)
    instead of dying of BrokenPipeError."""
    out = tmp_path / "w.npy"
    code, err, _ = interrupt_at_first_step([*ORPHAN_RUN, "--out", str(out)], timeout=120, close_pipe=True)
    assert code == 130 and err == "error: interrupted\n"
    assert not out.exists()
