"""convert-clip: an OpenAI CLIP checkpoint + BPE vocab → the pack's clip/ encoders and tokenizer.

`convert-clip --format openai --checkpoint C.pt --vocab bpe_simple_vocab_16e6.txt.gz --out PACK`
writes PACK/clip/text_encoder.onnx, image_encoder.onnx and tokenizer.json, and merges the "clip"
entry into PACK/pack.json (created when missing; other keys kept). The checkpoint is OpenAI's
download (a TorchScript archive, fp16) or a plain state_dict with the same keys.
"""

from __future__ import annotations

from pathlib import Path

from styleclip_toolkit.bpe import SimpleTokenizer, write_tokenizer_json
from styleclip_toolkit.clip_model import export_clip, load_clip_checkpoint
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import read_or_new_pack_json, write_pack_json

FORMATS = ("openai",)


def add_arguments(parser):
    parser.add_argument("--format", required=True, help="checkpoint format: openai (ViT CLIP .pt)")
    parser.add_argument("--checkpoint", required=True, help="OpenAI CLIP .pt (TorchScript archive or state_dict)")
    parser.add_argument("--vocab", required=True, help="OpenAI BPE vocab, e.g. bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--out", required=True, help="pack folder")


def convert_clip(checkpoint, vocab, out_dir):
    """Returns the "clip" entry written to pack.json."""
    model = load_clip_checkpoint(checkpoint)
    tokenizer = SimpleTokenizer(vocab)  # validates the vocab before anything is written
    if len(tokenizer.vocab) != model.token_embedding.num_embeddings:
        raise ToolkitError(f"vocab {vocab} has {len(tokenizer.vocab)} tokens but the CLIP checkpoint embeds "
                           f"{model.token_embedding.num_embeddings}: they don't belong together")
    meta = read_or_new_pack_json(out_dir)  # fail on a broken pack.json before exporting
    entry = export_clip(model, out_dir)
    entry["logitScale"] = float(model.logit_scale.detach().float().exp())  # exp(logit_scale): 100 for OpenAI's
    write_tokenizer_json(vocab, Path(out_dir) / "clip" / "tokenizer.json")
    meta["clip"] = entry
    write_pack_json(out_dir, meta)
    return entry


def run(args):
    if args.format not in FORMATS:
        raise ToolkitError(f"unknown CLIP format {args.format!r}: supported: {', '.join(FORMATS)}")
    entry = convert_clip(args.checkpoint, args.vocab, args.out)
    print(f"clip: embedDim {entry['embedDim']}, contextLength {entry['contextLength']}, "
          f"imageSize {entry['imageSize']} -> {Path(args.out) / 'clip'}")
    return 0
