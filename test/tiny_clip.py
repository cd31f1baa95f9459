"""A CLIP text model in transformers format, random weights and a byte-level vocabulary with no
merges: `ClipTextEncoder` loads and runs it exactly as it would CLIP's (no CLIP weights can be
downloaded here, so the real checkpoint itself is never run)."""

from __future__ import annotations

from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def make_tiny_clip(folder: Path, projection_dim: int = 24, seed: int = 0) -> Path:
    import torch
    from tokenizers import pre_tokenizers
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    # CLIP's BPE marks the last symbol of a word with </w>: every byte in both forms
    vocab = {BOS: 0, EOS: 1, **{c: 2 + i for i, c in enumerate(alphabet)}}
    vocab.update({c + "</w>": len(vocab) + i for i, c in enumerate(alphabet)})
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    cfg = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, projection_dim=projection_dim,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1)
    torch.manual_seed(seed)
    CLIPTextModelWithProjection(cfg).save_pretrained(folder)
    return Path(folder)
