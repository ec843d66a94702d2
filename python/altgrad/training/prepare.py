# SPDX-License-Identifier: MIT
"""Turn a text corpus into AltGrad's token files: ``train.bin`` /
``val.bin`` (flat uint16 ids) and ``meta.json`` beside them.

::

    python3 -m altgrad.training.prepare                    # King James Bible -> data/kjv
    python3 -m altgrad.training.prepare --input book.txt --out data/book
    python3 -m altgrad.training.prepare --tokenizer gpt2   # GPT-2 BPE (needs tiktoken)

The default corpus is the King James Bible of Debian's ``bible-kjv``
package (``bible gen1:1-rev22:21`` prints it, 4.3 MB), the corpus the C
transformer bench uses too. AltGrad trained on EUR-Lex through HuggingFace;
neither is available here.

Tokenizers: ``byte`` (default): the UTF-8 bytes of the text, vocab_size 256;
``gpt2``: tiktoken's GPT-2 BPE (``encode_ordinary``), vocab_size 50257, as
AltGrad. The split is fixed: the first ``1 - val_fraction`` of the tokens
train, the rest validate (a contiguous tail, so no passage is in both).
Files are written to temporary names and renamed, so a reader never sees a
half-written directory; an existing directory with the same source and
tokenizer is left as it is (``--force`` rewrites it).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np

from ..utils.files import atomic_write

__all__ = ["prepare", "kjv_text", "tokenize", "TOKENIZERS", "PrepareError", "main"]

TOKENIZERS = ("byte", "gpt2")
KJV_RANGE = "gen1:1-rev22:21"


class PrepareError(RuntimeError):
    """The corpus or tokenizer is not available (the message says how to get it)."""


def kjv_text():
    """The King James Bible as printed by Debian's ``bible`` (bible-kjv)."""
    exe = shutil.which("bible")
    if exe is None:
        raise PrepareError("the default corpus needs Debian's bible-kjv package "
                           "(`apt-get install bible-kjv`), or give a text file with --input")
    try:
        out = subprocess.run([exe, KJV_RANGE], check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise PrepareError(f"`bible {KJV_RANGE}` failed: {e}") from None
    if not out.strip():
        raise PrepareError(f"`bible {KJV_RANGE}` printed nothing (is bible-kjv complete?)")
    return out.decode("utf-8", errors="replace")


def tokenize(text, tokenizer="byte"):
    """``(ids, vocab_size)``: ids as a uint16 numpy array."""
    if tokenizer == "byte":
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16), 256
    if tokenizer == "gpt2":
        try:
            import tiktoken
        except ImportError:
            raise PrepareError("--tokenizer gpt2 needs tiktoken (`pip install tiktoken`); "
                               "the default byte tokenizer needs nothing") from None
        enc = tiktoken.get_encoding("gpt2")
        ids = enc.encode_ordinary(text) + [enc.eot_token]
        if enc.n_vocab > 65536:
            raise PrepareError(f"vocabulary of {enc.n_vocab} does not fit uint16 token files")
        return np.asarray(ids, dtype=np.uint16), enc.n_vocab
    raise PrepareError(f"unknown tokenizer {tokenizer!r} (known: {', '.join(TOKENIZERS)})")


def prepare(out_dir="data/kjv", input_path=None, tokenizer="byte", val_fraction=0.1,
            force=False):
    """Write ``train.bin``, ``val.bin`` and ``meta.json`` into `out_dir` from
    `input_path` (a UTF-8 text file) or, when None, the King James Bible.
    Returns the meta dict (``vocab_size``, ``tokenizer``, ``source``,
    ``sha256`` of the text, ``train_tokens``, ``val_tokens``,
    ``val_fraction``). Skips the work when `out_dir` already holds files
    from the same text and tokenizer, unless `force`. PrepareError /
    ValueError / FileNotFoundError for a missing corpus or tokenizer, an
    empty text or a bad fraction."""
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if input_path is None:
        text, source = kjv_text(), f"bible-kjv ({KJV_RANGE})"
    else:
        with open(input_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        source = os.path.abspath(input_path)
    if not text.strip():
        raise PrepareError(f"{source}: the text is empty")
    if tokenizer not in TOKENIZERS:
        raise PrepareError(f"unknown tokenizer {tokenizer!r} (known: {', '.join(TOKENIZERS)})")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    meta_path = os.path.join(out_dir, "meta.json")
    if not force and os.path.exists(meta_path) and all(
            os.path.exists(os.path.join(out_dir, f"{s}.bin")) for s in ("train", "val")):
        try:
            with open(meta_path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = {}
        if (old.get("sha256") == digest and old.get("tokenizer") == tokenizer
                and old.get("val_fraction") == float(val_fraction)):
            return old
    ids, vocab = tokenize(text, tokenizer)
    n_val = max(1, int(round(len(ids) * float(val_fraction))))
    if len(ids) - n_val < 2 or n_val < 2:
        raise PrepareError(f"{source}: {len(ids)} tokens are too few to split")
    os.makedirs(out_dir, exist_ok=True)
    meta = {"vocab_size": vocab, "tokenizer": tokenizer, "source": source, "sha256": digest,
            "train_tokens": int(len(ids) - n_val), "val_tokens": int(n_val),
            "val_fraction": float(val_fraction), "dtype": "uint16"}
    if os.path.exists(meta_path):  # invalidate first: no stale meta beside new bins
        os.remove(meta_path)
    for name, part in (("train.bin", ids[:-n_val]), ("val.bin", ids[-n_val:])):
        with atomic_write(os.path.join(out_dir, name)) as f:
            f.write(part.astype("<u2").tobytes())
    with atomic_write(meta_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python3 -m altgrad.training.prepare",
        description="Write train.bin / val.bin (uint16 tokens) and meta.json from a text corpus "
                    "(default: the King James Bible of Debian's bible-kjv).")
    p.add_argument("--input", help="a UTF-8 text file (default: `bible gen1:1-rev22:21`)")
    p.add_argument("--out", default="data/kjv", help="output directory (default data/kjv)")
    p.add_argument("--tokenizer", default="byte", choices=TOKENIZERS,
                   help="byte (vocab 256, default) or gpt2 (vocab 50257, needs tiktoken)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the tokens (the tail) kept for validation (default 0.1)")
    p.add_argument("--force", action="store_true", help="rewrite even when up to date")
    a = p.parse_args(argv)
    try:
        meta = prepare(a.out, a.input, a.tokenizer, a.val_fraction, a.force)
    except (PrepareError, ValueError, OSError) as e:
        print(f"prepare: {e}", file=sys.stderr)
        return 2
    print(f"{a.out}: {meta['train_tokens']} train + {meta['val_tokens']} val tokens, "
          f"tokenizer {meta['tokenizer']} (vocab_size {meta['vocab_size']}), from {meta['source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
