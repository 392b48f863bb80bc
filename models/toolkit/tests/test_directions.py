"""fs3 (`directions`) and `import-directions`."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from styleclip_toolkit.bpe import make_tiny_vocab
from styleclip_toolkit.clip_model import clip_from_state_dict, tiny_clip_state_dict
from styleclip_toolkit.convert_clip import convert_clip
from styleclip_toolkit.directions import channel_relevance, run_directions, sample_styles
from styleclip_toolkit.directions.image_encoder import image_encoder_from_pack
from styleclip_toolkit.directions.official import relevance_from_embeddings
from styleclip_toolkit.directions.synthesis_steps import SynthesisSteps
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.import_directions import import_directions
from styleclip_toolkit.pack import load_numbers, write_pack_json
from styleclip_toolkit.stats import run_stats
from styleclip_toolkit.stylegan2 import (build_random_checkpoint, generator_from_state_dict, style_layout,
                                         w_to_styles)

# Uneven, non-FFHQ widths: conv channels 8, 8, 6, 6, 4 = 32; toRGB 8, 6, 4.
CONFIG = dict(size=16, style_dim=8, n_mlp=2, channels={4: 8, 8: 6, 16: 4})


@pytest.fixture(scope="module")
def gen():
    return generator_from_state_dict(build_random_checkpoint(**CONFIG, seed=3)["g_ema"])


@pytest.fixture(scope="module")
def clip():
    return clip_from_state_dict(tiny_clip_state_dict(seed=1, vocab_size=300))


def smooth_embed(clip):
    # No uint8 quantisation here: float rounding must not flip pixel levels between the two paths.
    return lambda image: clip.encode_image(F.interpolate(image, size=clip.image_size, mode="bicubic",
                                                         align_corners=False))


def official_fs3(gen, embed, styles, mean, std, layout):
    """SingleChannel.py as written: one channel, one image, one render at a time, then GetFs."""
    feats = []
    for j, entry in enumerate(layout):
        if entry["toRgb"]:
            continue
        for c in range(entry["channels"]):
            per_image = []
            for n in range(styles[0].shape[0]):
                pair = []
                for alpha in (-5.0, 5.0):
                    one = [s[n:n + 1].clone() for s in styles]
                    one[j][0, c] = mean[j][c] + alpha * std[j][c]
                    pair.append(embed(gen.forward_styles(one))[0].double().numpy())
                per_image.append(pair)
            feats.append(per_image)
    return relevance_from_embeddings(np.array(feats))


def test_fast_fs3_equals_the_official_per_channel_loop(gen, clip):
    layout = style_layout(gen)
    embed = smooth_embed(clip)
    with torch.no_grad():
        styles = sample_styles(gen, torch.zeros(gen.style_dim), 3, seed=5, truncation=0.7)
        mean = [s.mean(0) for s in styles]
        std = [s.std(0) + 0.05 for s in styles]
        expected = official_fs3(gen, embed, styles, mean, std, layout)
        # batch 10 with 3 images: image groups of 2 + 1, batches that cut across channels
        for batch in (10, 64):
            fast = channel_relevance(SynthesisSteps(gen), embed, styles, mean, std, layout, batch)
            assert fast.shape == (32, clip.embed_dim)
            np.testing.assert_allclose(fast, expected, atol=5e-5)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, atol=1e-6)


def test_sample_styles_follow_the_official_seeding(gen):
    w_avg = torch.randn(gen.style_dim)
    with torch.no_grad():
        styles = sample_styles(gen, w_avg, 4, seed=5, truncation=0.7)
        z = torch.from_numpy(np.random.RandomState(5).randn(100, gen.style_dim).astype(np.float32))[:4]
        w = w_avg + 0.7 * (gen.style(z) - w_avg)
        expected = w_to_styles(gen, w[:, None].repeat(1, gen.n_latent, 1))
    for got, want in zip(styles, expected):
        torch.testing.assert_close(got, want)


@pytest.fixture()
def pack(small_pack, tmp_path):
    """conftest's converted generator plus a converted tiny CLIP (no stats yet)."""
    pack = tmp_path / "pack"
    shutil.copytree(small_pack, pack)
    torch.save(tiny_clip_state_dict(seed=2), tmp_path / "clip.pt")
    make_tiny_vocab(tmp_path / "bpe.txt.gz")
    convert_clip(tmp_path / "clip.pt", tmp_path / "bpe.txt.gz", pack)
    return pack


def test_run_directions_writes_fs3_into_the_pack(pack):
    run_stats(pack, samples=200)
    fs3 = run_directions(pack, images=2, batch=48)  # CLIP rebuilt from clip/image_encoder.onnx
    saved = np.load(pack / "directions" / "fs3.npy")
    conv = sum(e["channels"] for e in json.loads((pack / "pack.json").read_text())["styleLayout"] if not e["toRgb"])
    assert saved.dtype == np.float32 and saved.shape == (conv, 32)
    np.testing.assert_array_equal(saved, fs3)
    np.testing.assert_allclose(np.linalg.norm(saved, axis=1), 1.0, atol=1e-5)
    meta = json.loads((pack / "pack.json").read_text())
    assert meta["directions"] == {"source": "computed", "images": 2, "seed": 5, "truncation": 0.7, "sigmas": 5.0,
                                  "precision": "fp32"}


def test_pack_image_encoder_is_the_converted_clip(pack):
    clip = clip_from_state_dict(tiny_clip_state_dict(seed=2))
    pixels = torch.randn(3, 3, clip.image_size, clip.image_size)
    with torch.no_grad():
        torch.testing.assert_close(image_encoder_from_pack(pack).encode_image(pixels), clip.encode_image(pixels))


class Interrupted(Exception):
    pass


def interrupt_after(calls):
    """A progress callback that raises on its `calls`-th call (the last group of a layer is
    reported after that layer's checkpoint, so finished layers are on disk by then)."""
    seen = []

    def progress(done, total, elapsed):
        seen.append((done, total))
        if len(seen) == calls:
            raise Interrupted
    return progress


def partial_meta(pack):
    return json.loads((pack / "directions" / "fs3.partial.json").read_text())


def test_interrupted_directions_resume_to_the_uninterrupted_result(pack):
    run_stats(pack, samples=200)
    full = run_directions(pack, images=2, batch=8)
    assert not (pack / "directions" / "fs3.partial.json").exists()
    with pytest.raises(Interrupted):
        run_directions(pack, images=2, batch=8, progress=interrupt_after(3))
    meta = partial_meta(pack)
    conv = [j for j, e in enumerate(json.loads((pack / "pack.json").read_text())["styleLayout"]) if not e["toRgb"]]
    assert meta["layers"] and len(meta["layers"]) < len(conv) and set(meta["layers"]) <= set(conv)
    assert meta["rows"] == full.shape[0] and 0 < meta["rowsDone"] < meta["rows"]
    assert meta["settings"]["images"] == 2 and meta["settings"]["batch"] == 8 and len(meta["settings"]["files"]) == 64
    partial = np.load(pack / "directions" / "fs3.partial.npy", allow_pickle=False)
    assert partial.dtype == np.float32 and partial.shape == full.shape
    np.testing.assert_array_equal(partial[:meta["rowsDone"]], full[:meta["rowsDone"]])  # leading layers first
    assert not partial[meta["rowsDone"]:].any()

    lines, totals = [], []
    resumed = run_directions(pack, images=2, batch=8, log=lines.append,
                             progress=lambda done, total, elapsed: totals.append(total))
    assert lines[0].startswith(f"resuming: {meta['rowsDone']} of {meta['rows']} channels done")
    assert set(totals) == {2 * (meta["rows"] - meta["rowsDone"])}  # finished layers are not rendered again
    np.testing.assert_array_equal(resumed, full)
    np.testing.assert_array_equal(np.load(pack / "directions" / "fs3.npy"), full)
    assert not list((pack / "directions").glob("fs3.partial*"))


def test_a_partial_from_other_settings_is_not_reused(pack):
    run_stats(pack, samples=200)
    with pytest.raises(Interrupted):
        run_directions(pack, images=2, batch=8, seed=5, progress=interrupt_after(3))
    with pytest.raises(ToolkitError, match=re.escape("other settings (seed 5 in the partial, 6 now)")):
        run_directions(pack, images=2, batch=8, seed=6)
    run_stats(pack, samples=100)  # other s_mean/s_std files, same options
    with pytest.raises(ToolkitError, match="files have changed.*--restart to discard it"):
        run_directions(pack, images=2, batch=8, seed=5)
    assert partial_meta(pack)["settings"]["seed"] == 5  # refused, not overwritten
    lines = []
    restarted = run_directions(pack, images=2, batch=8, seed=6, restart=True, log=lines.append)
    assert lines == [] and not list((pack / "directions").glob("fs3.partial*"))
    np.testing.assert_array_equal(restarted, run_directions(pack, images=2, batch=8, seed=6))


def test_directions_help_documents_resuming(capsys):
    from styleclip_toolkit.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["directions", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "--restart" in out and "directions/fs3.partial.npy" in out and "resuming: N of M channels done" in out


@pytest.mark.parametrize("kwargs, message", [
    ({}, "pack has no s_mean.npy: run `stats --pack"),
    ({"device": "gpu"}, "unknown --device 'gpu'"),
    ({"images": 0}, "--images must be >= 1"),
])
def test_run_directions_reports_bad_input(pack, kwargs, message):
    with pytest.raises(ToolkitError, match=re.escape(message)):
        run_directions(pack, **kwargs)


# ---- import-directions ------------------------------------------------------------------


@pytest.fixture()
def layout_pack(tmp_path, gen):
    layout = style_layout(gen)
    write_pack_json(tmp_path, {"format": "styleclip-pack", "version": 1, "styleLayout": layout,
                               "clip": {"embedDim": 16}})
    return tmp_path


def unit_rows(rows, dim=16, seed=0):
    f = np.random.RandomState(seed).randn(rows, dim)
    return (f / np.linalg.norm(f, axis=1, keepdims=True)).astype(np.float64)


def test_import_conv_only_std_is_expanded_with_zeros_at_torgb(layout_pack):
    fs3, std = unit_rows(32), np.arange(1, 33, dtype=np.float64)
    import_directions(layout_pack, fs3, std)
    saved_fs3 = np.load(layout_pack / "directions" / "fs3.npy")
    saved_std = np.load(layout_pack / "directions" / "s_std.npy")
    assert saved_fs3.dtype == np.float32 and saved_std.dtype == np.float32
    np.testing.assert_allclose(saved_fs3, fs3, rtol=1e-6)
    # layout: conv1 8 | to_rgb1 8 | convs.0 8 | convs.1 6 | to_rgbs.0 6 | convs.2 6 | convs.3 4 | to_rgbs.1 4
    expected = np.concatenate([std[:8], np.zeros(8), std[8:22], np.zeros(6), std[22:], np.zeros(4)])
    np.testing.assert_array_equal(saved_std, expected.astype(np.float32))
    assert json.loads((layout_pack / "pack.json").read_text())["directions"] == {"source": "imported"}


def test_import_full_std_and_partial_fs3(layout_pack):
    std = np.linspace(0.1, 1, 50)
    import_directions(layout_pack, unit_rows(22), std)  # official style: only the first layers (8+8+6)
    saved = np.load(layout_pack / "directions" / "fs3.npy")
    assert saved.shape == (32, 16)
    np.testing.assert_allclose(saved[:22], unit_rows(22), rtol=1e-6)
    assert not saved[22:].any()
    np.testing.assert_allclose(np.load(layout_pack / "directions" / "s_std.npy"), std, rtol=1e-6)


@pytest.mark.parametrize("fs3, std, message", [
    (unit_rows(30), np.ones(32), "fs3 has 30 rows but the pack has 32 conv style channels"),
    (unit_rows(32, dim=8), np.ones(32), "fs3 has 8 columns but the pack's CLIP embedDim is 16"),
    (np.ones((2, 16, 16)), np.ones(32), "fs3 must be 2-D"),
    (unit_rows(32), np.ones(40), "std has 40 entries but the pack has 50 style channels (32 conv channels)"),
    (unit_rows(32), np.ones((1, 32)), "std must be 1-D"),
    (unit_rows(32), -np.ones(32), "std has negative entries"),
])
def test_import_rejects_mismatched_arrays(layout_pack, fs3, std, message):
    with pytest.raises(ToolkitError) as err:
        import_directions(layout_pack, fs3, std)
    assert message in str(err.value)
    assert not (layout_pack / "directions" / "fs3.npy").exists()


def run_cli(*args):
    return subprocess.run(["bash", "scripts/toolkit.sh", "-m", "styleclip_toolkit", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    (np.full(32, np.nan), "contains NaN or infinity"),
    (np.array(["a", "b"]), "must hold numbers"),
    (np.array([{"a": 1}], dtype=object), "cannot read"),  # never unpickled
    ({"std": np.ones(3)}, "not an .npz archive"),
])
def test_bad_npy_files_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / "std.npy"
    if isinstance(content, dict):
        with open(path, "wb") as f:
            np.savez(f, **content)
    elif content is not None:
        np.save(path, content, allow_pickle=True)
    with pytest.raises(ToolkitError, match=message):
        load_numbers(path, "std")


def test_import_cli(layout_pack, tmp_path):
    np.save(tmp_path / "fs3.npy", unit_rows(32))
    res = run_cli("import-directions", "--fs3", tmp_path / "fs3.npy", "--std", tmp_path / "no.npy", "--out", layout_pack)
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [f"error: std not found: {tmp_path / 'no.npy'}"]
    np.save(tmp_path / "std.npy", np.ones(32))
    res = run_cli("import-directions", "--fs3", tmp_path / "fs3.npy", "--std", tmp_path / "std.npy",
                  "--out", layout_pack)
    assert res.returncode == 0, res.stderr
    assert "fs3 32x16" in res.stdout


def test_bench_measures_and_extrapolates(capsys):
    from styleclip_toolkit.directions.bench import main

    main(["--resolution", "16", "--max-width", "8", "--style-dim", "8", "--images", "2", "--batch", "16",
          "--batches", "1", "--full", "--device", "cpu"])
    result = json.loads(capsys.readouterr().out)
    assert result["convChannels"] == 40 and result["renders"] == 160
    assert [layer["name"] for layer in result["layers"]] == ["conv1", "convs.0", "convs.1", "convs.2", "convs.3"]
    # durations only need to be reported (a fast machine may measure well under a millisecond)
    assert all(isinstance(result[k], float) and result[k] >= 0 for k in ("full_s", "fast_s", "official_s"))
