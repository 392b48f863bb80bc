"""The whole CLIP model rebuilt in torch from a pack (no pickles): the image tower from
clip/image_encoder.onnx (`directions.image_encoder`), the text tower from clip/text_encoder.onnx, the tokenizer
from clip/tokenizer.json and the logit scale from pack.json. Used by `optimize`, which needs
gradients through the image tower and the raw prompt's text embedding.

pack.json `clip.logitScale` is exp(logit_scale), the factor CLIP multiplies cosines by (100 for
OpenAI's released models); packs converted before it existed get DEFAULT_LOGIT_SCALE.
"""

from __future__ import annotations

import json
import math

import torch

from styleclip_toolkit.bpe import SimpleTokenizer, tokenize
from styleclip_toolkit.clip_model import clip_from_state_dict
from styleclip_toolkit.directions.image_encoder import image_encoder_from_pack
from styleclip_toolkit.errors import ToolkitError
from styleclip_toolkit.pack import onnx_initializers, pack_file, read_pack_json

DEFAULT_LOGIT_SCALE = 100.0
_PREFIX = "module."  # the export wrapper's attribute name


def logit_scale_from_pack(pack_dir) -> float:
    """pack.json clip.logitScale (exp of CLIP's logit_scale), or 100 when the pack predates it."""
    value = (read_pack_json(pack_dir).get("clip") or {}).get("logitScale", DEFAULT_LOGIT_SCALE)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ToolkitError(f"pack.json clip.logitScale must be a positive number, got {value!r}")
    return float(value)


def clip_from_pack(pack_dir):
    """clip_model.CLIP (float32, eval) with the pack's text and image towers and logit scale."""
    path = pack_file(pack_dir, "textEncoder")
    if not path.is_file():
        raise ToolkitError(f"pack has no {path.name}: run convert-clip first")
    sd = {k[len(_PREFIX):]: torch.from_numpy(v.copy()) for k, v in onnx_initializers(path).items()
          if k.startswith(_PREFIX)}
    visual = image_encoder_from_pack(pack_dir).visual
    sd.update({f"visual.{k}": v for k, v in visual.state_dict().items()})
    sd["logit_scale"] = torch.tensor(math.log(logit_scale_from_pack(pack_dir)))
    try:
        return clip_from_state_dict(sd)
    except ToolkitError as e:
        raise ToolkitError(f"{path} does not hold CLIP's text tower under its state_dict names "
                           f"(re-run convert-clip): {e}") from None


def tokenizer_from_pack(pack_dir) -> SimpleTokenizer:
    """OpenAI's BPE from clip/tokenizer.json (its merges; ids from its vocab)."""
    path = pack_file(pack_dir, "tokenizer")
    if not path.is_file():
        raise ToolkitError(f"pack has no {path.name}: run convert-clip first")
    try:
        model = json.loads(path.read_text(encoding="utf-8"))["model"]
        merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
        tok = SimpleTokenizer(None, merges=merges)
        tok.encoder = {str(k): int(v) for k, v in model["vocab"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ToolkitError(f"{path} is not a CLIP tokenizer.json ({type(e).__name__}: {e})") from None
    tok.decoder = {i: t for t, i in tok.encoder.items()}
    return tok


def prompt_ids(pack_dir, prompt: str, context_length: int) -> torch.Tensor:
    """clip.tokenize(prompt) with the pack's tokenizer: int64 [1, context_length]."""
    return tokenize(tokenizer_from_pack(pack_dir), [prompt], context_length)
