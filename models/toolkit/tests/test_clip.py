"""convert-clip: OpenAI CLIP checkpoints (state_dict or TorchScript archive) -> pack clip/."""

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from conftest import run_ort
from styleclip_toolkit.bpe import SimpleTokenizer, make_tiny_vocab, tokenize
from styleclip_toolkit.clip_model import (CLIP_MEAN, CLIP_STD, clip_from_state_dict, config_from_state_dict,
                                          load_clip_checkpoint, preprocess_tensor, tiny_clip_state_dict,
                                          vit_b32_state_dict)
from styleclip_toolkit.convert_clip import convert_clip
from styleclip_toolkit.errors import ToolkitError


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    return make_tiny_vocab(tmp_path_factory.mktemp("vocab") / "bpe_tiny.txt.gz")


@pytest.fixture(scope="module")
def tiny_sd():
    return tiny_clip_state_dict(seed=3)


@pytest.fixture(scope="module")
def texts(vocab):
    return tokenize(SimpleTokenizer(vocab), ["a photo of a face.", "face with blue eyes", "curly hair", "!"])


# ---------------------------------------------------------------------------------------------
# An independent reference: OpenAI's forward pass written with torch's own nn.MultiheadAttention
# (sequence-first layout, additive causal mask), loaded from the same state_dict.


class RefBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, 4 * width)), ("gelu", nn.Identity()),
                                              ("c_proj", nn.Linear(4 * width, width))]))

    def forward(self, x, mask):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        h = self.mlp.c_fc(self.ln_2(x))
        return x + self.mlp.c_proj(h * torch.sigmoid(1.702 * h))


def reference_encoders(sd, heads, vision_heads):
    """(encode_text, encode_image) computed the way OpenAI's clip/model.py does."""
    def blocks(prefix, width, n, h):
        mods = [RefBlock(width, h) for _ in range(n)]
        for i, m in enumerate(mods):
            m.load_state_dict({k[len(f"{prefix}{i}."):]: v for k, v in sd.items() if k.startswith(f"{prefix}{i}.")})
        return mods

    def ln(x, prefix):
        return nn.functional.layer_norm(x, x.shape[-1:], sd[prefix + ".weight"], sd[prefix + ".bias"])

    width = sd["ln_final.weight"].shape[0]
    text_blocks = blocks("transformer.resblocks.", width, 2, heads)
    vw = sd["visual.conv1.weight"].shape[0]
    vis_blocks = blocks("visual.transformer.resblocks.", vw, 2, vision_heads)
    ctx = sd["positional_embedding"].shape[0]
    mask = torch.full((ctx, ctx), float("-inf")).triu(1)

    def encode_text(ids):
        x = (sd["token_embedding.weight"][ids] + sd["positional_embedding"]).permute(1, 0, 2)
        for b in text_blocks:
            x = b(x, mask)
        x = ln(x.permute(1, 0, 2), "ln_final")
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ sd["text_projection"]

    def encode_image(pixels):
        patch = sd["visual.conv1.weight"].shape[-1]
        x = nn.functional.conv2d(pixels, sd["visual.conv1.weight"], stride=patch)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = sd["visual.class_embedding"] + torch.zeros(x.shape[0], 1, x.shape[-1])
        x = ln(torch.cat([cls, x], dim=1) + sd["visual.positional_embedding"], "visual.ln_pre").permute(1, 0, 2)
        for b in vis_blocks:
            x = b(x, None)
        return ln(x.permute(1, 0, 2)[:, 0, :], "visual.ln_post") @ sd["visual.proj"]

    return encode_text, encode_image


def test_model_matches_openai_forward(tiny_sd, texts):
    model = clip_from_state_dict(tiny_sd)
    ref_text, ref_image = reference_encoders(tiny_sd, heads=2, vision_heads=2)
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(model.encode_text(texts), ref_text(texts), atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(model.encode_image(pixels), ref_image(pixels), atol=1e-5, rtol=1e-4)
        # The causal mask matters: a later token must not change an earlier EOT's features.
        longer = texts.clone()
        longer[0, texts[0].argmax() + 1] = 5
        assert torch.equal(model.encode_text(longer)[0], model.encode_text(texts)[0])


def test_sizes_are_inferred_from_tensors():
    sd = tiny_clip_state_dict(seed=0, vocab_size=600, embed_dim=24, width=48, layers=3, heads=3,
                              vision_width=64, vision_layers=1, patch=4, image_size=16, context_length=20)
    assert config_from_state_dict(sd) == dict(embed_dim=24, context_length=20, vocab_size=600, width=48, layers=3,
                                              heads=3, image_size=16, patch=4, vision_width=64, vision_layers=1,
                                              vision_heads=1)
    model = clip_from_state_dict(sd)
    with torch.no_grad():
        assert model.encode_text(torch.tensor([[1] + [599] + [0] * 18])).shape == (1, 24)
        assert model.encode_image(torch.zeros(2, 3, 16, 16)).shape == (2, 24)


def test_vit_b32_random_weights_have_vit_b32_shapes():
    sd = vit_b32_state_dict(seed=0)
    assert config_from_state_dict(sd) == dict(embed_dim=512, context_length=77, vocab_size=49408, width=512,
                                              layers=12, heads=8, image_size=224, patch=32, vision_width=768,
                                              vision_layers=12, vision_heads=12)
    assert sum(v.numel() for v in sd.values()) == 151_277_313  # ViT-B/32's parameter count


def test_onnx_encoders_match_torch_with_any_batch(tiny_sd, texts, vocab, tmp_path):
    pack = tmp_path / "pack"
    torch.save(tiny_sd, tmp_path / "clip.pt")
    entry = convert_clip(tmp_path / "clip.pt", vocab, pack)
    assert entry == {"embedDim": 32, "contextLength": 77, "imageSize": 32, "logitScale": pytest.approx(1 / 0.07)}
    model = clip_from_state_dict(tiny_sd)
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want_text, want_image = model.encode_text(texts).numpy(), model.encode_image(pixels).numpy()
    got_text = run_ort(pack / "clip" / "text_encoder.onnx", tmp_path / "t", input_ids=texts.numpy())
    got_image = run_ort(pack / "clip" / "image_encoder.onnx", tmp_path / "i", pixel_values=pixels.numpy())
    np.testing.assert_allclose(got_text["text_embeds"], want_text, atol=1e-5, rtol=1e-4)
    # The sequence axis is dynamic: ids cut after the longest EOT give the same embeddings.
    cut = int(texts.argmax(dim=-1).max()) + 1
    got_cut = run_ort(pack / "clip" / "text_encoder.onnx", tmp_path / "c", input_ids=texts[:, :cut].numpy())
    np.testing.assert_allclose(got_cut["text_embeds"], want_text, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(got_image["image_embeds"], want_image, atol=1e-5, rtol=1e-4)
    assert json.loads((pack / "pack.json").read_text())["clip"] == entry


class ArchiveLike(nn.Module):
    """What OpenAI's TorchScript downloads hold: CLIP's modules and parameters under their names,
    fp16 weights, plus input_resolution/context_length/vocab_size tensors."""

    def __init__(self, model):
        super().__init__()
        for name, child in model.named_children():
            setattr(self, name, child)
        for name, p in model.named_parameters(recurse=False):
            self.register_parameter(name, p)
        self.register_buffer("input_resolution", torch.tensor(model.image_size))
        self.register_buffer("context_length", torch.tensor(model.context_length))
        self.register_buffer("vocab_size", torch.tensor(model.token_embedding.num_embeddings))

    def forward(self, x):
        return self.logit_scale * x


def test_torchscript_archive_and_state_dict_give_the_same_pack(tiny_sd, texts, vocab, tmp_path):
    half = {k: v.half() for k, v in tiny_sd.items()}  # OpenAI ships fp16 weights
    archive = torch.jit.trace(ArchiveLike(clip_from_state_dict(half)).half(), torch.ones(1, dtype=torch.half))
    archive.save(str(tmp_path / "ViT-tiny.pt"))
    torch.save(half, tmp_path / "state_dict.pt")
    outputs = []
    for name in ("ViT-tiny.pt", "state_dict.pt"):
        pack = tmp_path / f"pack-{name}"
        convert_clip(tmp_path / name, vocab, pack)
        outputs.append(run_ort(pack / "clip" / "text_encoder.onnx", tmp_path / f"o-{name}", input_ids=texts.numpy()))
        assert (pack / "clip" / "tokenizer.json").read_bytes() == (tmp_path / f"pack-ViT-tiny.pt" / "clip" / "tokenizer.json").read_bytes()
    np.testing.assert_array_equal(outputs[0]["text_embeds"], outputs[1]["text_embeds"])
    # fp16 weights are widened exactly: the archive's model equals the float32 model of the same values.
    loaded = load_clip_checkpoint(tmp_path / "ViT-tiny.pt")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert torch.equal(loaded.text_projection, half["text_projection"].float())


def test_pack_json_keeps_other_keys(tiny_sd, vocab, tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "pack.json").write_text(json.dumps({"format": "styleclip-pack", "version": 1, "name": "x",
                                                "clip": {"embedDim": 1}, "numWs": 4}))
    torch.save(tiny_sd, tmp_path / "clip.pt")
    convert_clip(tmp_path / "clip.pt", vocab, pack)
    meta = json.loads((pack / "pack.json").read_text())
    assert meta["name"] == "x" and meta["numWs"] == 4
    assert meta["clip"] == {"embedDim": 32, "contextLength": 77, "imageSize": 32, "logitScale": pytest.approx(1 / 0.07)}


class Gadget:
    """A pickled object that would run code in an unrestricted torch.load."""


@pytest.mark.parametrize("content, message", [
    ("resnet", "ResNet CLIP not supported"),
    ("hf", "Hugging Face CLIP checkpoint"),
    ("missing", "not an OpenAI CLIP checkpoint: missing visual.proj"),
    ("shape", "does not match OpenAI's layout"),
    ("list", "holds a list, not a CLIP state_dict"),
    ("object", "refusing to load"),
    ("garbage", "cannot read checkpoint"),
])
def test_malformed_checkpoints_are_refused_in_one_line(content, message, tiny_sd, tmp_path):
    path = tmp_path / "bad.pt"
    bad = dict(tiny_sd)
    if content == "resnet":
        bad = {k: v for k, v in bad.items() if not k.startswith("visual.")}
        bad["visual.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    elif content == "hf":
        bad = {"text_model.embeddings.token_embedding.weight": torch.zeros(3, 3)}
    elif content == "missing":
        del bad["visual.proj"]
    elif content == "shape":
        bad["ln_final.bias"] = torch.zeros(31)
    elif content == "list":
        bad = [torch.zeros(1)]
    elif content == "object":
        bad = {"token_embedding.weight": Gadget()}
    if content == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    else:
        torch.save(bad, path)
    with pytest.raises(ToolkitError, match=message) as info:
        load_clip_checkpoint(path)
    assert "\n" not in str(info.value)


def test_cli_reports_bad_input_on_one_line(tiny_sd, vocab, tmp_path, capsys):
    from styleclip_toolkit.cli import main

    torch.save(tiny_sd, tmp_path / "clip.pt")
    rc = main(["convert-clip", "--format", "huggingface", "--checkpoint", str(tmp_path / "clip.pt"),
               "--vocab", str(vocab), "--out", str(tmp_path / "pack")])
    assert rc == 1 and capsys.readouterr().err == "error: unknown CLIP format 'huggingface': supported: openai\n"


def test_missing_files_and_mismatched_vocab_write_nothing(tiny_sd, vocab, tmp_path):
    torch.save(tiny_sd, tmp_path / "clip.pt")
    out = tmp_path / "pack"
    with pytest.raises(ToolkitError, match="^CLIP checkpoint not found"):
        convert_clip(tmp_path / "nope.pt", vocab, out)
    with pytest.raises(ToolkitError, match="^cannot read BPE vocab"):
        convert_clip(tmp_path / "clip.pt", tmp_path / "nope.txt.gz", out)
    other = make_tiny_vocab(tmp_path / "other.txt.gz", n_merges=100)
    with pytest.raises(ToolkitError, match="has 614 tokens but the CLIP checkpoint embeds 914"):
        convert_clip(tmp_path / "clip.pt", other, out)
    assert not out.exists()


def test_preprocess_matches_pil_within_rounding():
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    # Smooth content plus noise, in the generator's [-1, 1] range, not square: 96 x 128.
    images = (torch.nn.functional.interpolate(torch.randn(2, 3, 12, 16, generator=gen), size=(96, 128),
                                              mode="bilinear", align_corners=False)
              + 0.1 * torch.randn(2, 3, 96, 128, generator=gen)).clamp(-1, 1)
    got = preprocess_tensor(images, image_size=32)
    assert got.shape == (2, 3, 32, 32)
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    for img, out in zip(images, got):
        u8 = ((img + 1) * 127.5).clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        pil = Image.fromarray(u8).resize((42, 32), Image.BICUBIC)  # shorter side 32, width int(32*128/96)
        left = int(round((42 - 32) / 2.0))
        ref = torch.from_numpy(np.array(pil)[:, left:left + 32]).permute(2, 0, 1).float() / 255
        steps = ((out * std + mean) - ref).abs() * 255  # in uint8 steps
        assert steps.max() < 1.01 and (steps > 0.5).float().mean() < 0.01

