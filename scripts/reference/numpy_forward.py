#!/usr/bin/env python3
"""An independent float32 numpy forward pass of the two GGUF models, straight from the GGUF tensors.

No transformers: the tensors are read with `gguf.GGUFReader` and dequantized with
`gguf.quants.dequantize`, used *as stored* (no renaming beyond the names below, no permutation, the
Gemma norm weights used as the stored `1 + w` directly), and the equations are written out here. It
checks the description a Rust port follows (scripts/reference/README.md) against the transformers
fixture: it recomputes `logprobs` and `logprobs_long` (the input ids are taken from the fixture) and
prints the max |logprob - fixture| per document, and the greedy first new id of each prompt.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python scripts/reference/numpy_forward.py
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from gguf import GGUFReader  # noqa: E402
from gguf.quants import dequantize  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS = {"gemma-3-270m": "gemma.gguf", "qwen2.5-coder-0.5b-instruct": "qwen.gguf"}


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


class Weights:
    def __init__(self, path):
        self.reader = GGUFReader(path)
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.cache = {}

    def __call__(self, name):
        """(rows, cols) = (out_features, in_features) for a matrix, as numpy float32."""
        if name not in self.cache:
            t = self.tensors[name]
            self.cache[name] = np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        return self.cache[name]

    def has(self, name):
        return name in self.tensors


def rms_norm(x, w, eps):
    """x * rsqrt(mean(x^2) + eps) * w, in float32 (w is the multiplier actually applied)."""
    x = x.astype(np.float32)
    return (x / np.sqrt((x * x).mean(-1, keepdims=True) + np.float32(eps))).astype(np.float32) * w


def rope(x, theta, positions):
    """NeoX-style ("rotate_half") rotary embedding on the whole head: pairs (i, i + d/2)."""
    d = x.shape[-1]
    inv = (1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float32) / np.float32(d)))).astype(np.float32)
    freqs = positions[:, None].astype(np.float32) * inv[None, :]  # (n, d/2)
    emb = np.concatenate([freqs, freqs], -1)
    cos, sin = np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)  # (n, d)
    rot = np.concatenate([-x[..., d // 2 :], x[..., : d // 2]], -1)
    return x * cos[:, None, :] + rot * sin[:, None, :]  # x: (n, heads, d)


def attention(q, k, v, scale, window=None):
    """q (n, H, d), k/v (n, KV, d); grouped heads: query head h reads kv head h // (H / KV)."""
    n, H, d = q.shape
    kv = k.shape[1]
    rep = H // kv
    k = np.repeat(k, rep, axis=1)
    v = np.repeat(v, rep, axis=1)
    s = np.einsum("qhd,khd->hqk", q, k).astype(np.float32) * np.float32(scale)
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    allowed = j <= i
    if window is not None:
        allowed &= j > i - window  # a query sees itself and the window-1 keys before it
    s = np.where(allowed[None], s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", p.astype(np.float32), v).reshape(n, H * d)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.float32(np.sqrt(2.0 / np.pi)) * (x + np.float32(0.044715) * x**3)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def gemma3_logits(W, r, ids):
    a = "gemma3"
    n_layer = field(r, f"{a}.block_count")
    hidden = field(r, f"{a}.embedding_length")
    n_head = field(r, f"{a}.attention.head_count")
    n_kv = field(r, f"{a}.attention.head_count_kv")
    head_dim = field(r, f"{a}.attention.key_length")
    eps = field(r, f"{a}.attention.layer_norm_rms_epsilon")
    theta_global = field(r, f"{a}.rope.freq_base")
    window = field(r, f"{a}.attention.sliding_window")
    theta_local = 10000.0  # not in the GGUF: llama.cpp and transformers both default it
    pattern = 6  # not in the GGUF: every 6th layer (index 5, 11, 17) is global, the rest sliding
    scale = 256**-0.5  # query_pre_attn_scalar = 256 (transformers default; = head_dim here)
    pos = np.arange(len(ids))
    emb = W("token_embd.weight")
    x = emb[ids] * np.float32(hidden**0.5)
    for L in range(n_layer):
        p = f"blk.{L}."
        sliding = (L + 1) % pattern != 0
        h = rms_norm(x, W(p + "attn_norm.weight"), eps)
        q = (h @ W(p + "attn_q.weight").T).reshape(-1, n_head, head_dim)
        k = (h @ W(p + "attn_k.weight").T).reshape(-1, n_kv, head_dim)
        v = (h @ W(p + "attn_v.weight").T).reshape(-1, n_kv, head_dim)
        q = rms_norm(q, W(p + "attn_q_norm.weight"), eps)
        k = rms_norm(k, W(p + "attn_k_norm.weight"), eps)
        theta = theta_local if sliding else theta_global
        q, k = rope(q, theta, pos), rope(k, theta, pos)
        o = attention(q, k, v, scale, window if sliding else None) @ W(p + "attn_output.weight").T
        x = x + rms_norm(o, W(p + "post_attention_norm.weight"), eps)
        h = rms_norm(x, W(p + "ffn_norm.weight"), eps)
        m = (gelu_tanh(h @ W(p + "ffn_gate.weight").T) * (h @ W(p + "ffn_up.weight").T)) @ W(p + "ffn_down.weight").T
        x = x + rms_norm(m, W(p + "post_ffw_norm.weight"), eps)
    x = rms_norm(x, W("output_norm.weight"), eps)
    return x @ (W("output.weight") if W.has("output.weight") else emb).T


def qwen2_logits(W, r, ids):
    a = "qwen2"
    n_layer = field(r, f"{a}.block_count")
    hidden = field(r, f"{a}.embedding_length")
    n_head = field(r, f"{a}.attention.head_count")
    n_kv = field(r, f"{a}.attention.head_count_kv")
    head_dim = hidden // n_head
    eps = field(r, f"{a}.attention.layer_norm_rms_epsilon")
    theta = field(r, f"{a}.rope.freq_base")
    pos = np.arange(len(ids))
    x = W("token_embd.weight")[ids]
    for L in range(n_layer):
        p = f"blk.{L}."
        h = rms_norm(x, W(p + "attn_norm.weight"), eps)
        q = (h @ W(p + "attn_q.weight").T + W(p + "attn_q.bias")).reshape(-1, n_head, head_dim)
        k = (h @ W(p + "attn_k.weight").T + W(p + "attn_k.bias")).reshape(-1, n_kv, head_dim)
        v = (h @ W(p + "attn_v.weight").T + W(p + "attn_v.bias")).reshape(-1, n_kv, head_dim)
        q, k = rope(q, theta, pos), rope(k, theta, pos)
        x = x + attention(q, k, v, head_dim**-0.5) @ W(p + "attn_output.weight").T
        h = rms_norm(x, W(p + "ffn_norm.weight"), eps)
        x = x + (silu(h @ W(p + "ffn_gate.weight").T) * (h @ W(p + "ffn_up.weight").T)) @ W(p + "ffn_down.weight").T
    x = rms_norm(x, W("output_norm.weight"), eps)
    return x @ (W("output.weight") if W.has("output.weight") else W("token_embd.weight")).T


def logprobs(logits, ids):
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    lse = np.log(np.exp(z).sum(-1))
    return z[np.arange(len(ids) - 1), ids[1:]] - lse[:-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", default="/work/models-dev")
    ap.add_argument("--fixtures", default=os.path.join(REPO, "crates", "lm", "tests", "reference"))
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    for name in args.models.split(","):
        W = Weights(os.path.join(args.models_dir, MODELS[name]))
        arch = field(W.reader, "general.architecture")
        fwd = {"gemma3": gemma3_logits, "qwen2": qwen2_logits}[arch]
        with open(os.path.join(args.fixtures, f"{name}.json")) as f:
            fx = json.load(f)
        print(f"== {name} ({arch})", flush=True)
        for doc in fx["logprobs"]["docs"]:
            ids = np.array(doc["input_ids"])
            t = time.time()
            lp = logprobs(fwd(W, W.reader, ids), ids)
            ref = np.array(doc["next_token_logprobs"])
            print(
                f"  {doc['file']}: {len(ids)} ids, max |logprob diff| {np.abs(lp - ref).max():.2e}, "
                f"mean {np.abs(lp - ref).mean():.2e}, sum {lp.sum():.4f} vs {doc['sum_logprob']:.4f} "
                f"({time.time() - t:.0f}s)",
                flush=True,
            )
        agree = 0
        for g in fx["greedy"]["prompts"]:
            ids = np.array(g["input_ids"])
            last = fwd(W, W.reader, ids)[-1].copy()
            last[fx["greedy"]["eos_ids_suppressed"]] = -np.inf
            first = int(np.argmax(last))
            agree += first == g["new_ids"][0]
        print(f"  greedy first new id agrees on {agree}/{len(fx['greedy']['prompts'])} prompts", flush=True)
        if "logprobs_long" in fx:
            d = fx["logprobs_long"]
            ids = np.array(d["input_ids"])
            t = time.time()
            lp = logprobs(fwd(W, W.reader, ids), ids)
            ref = np.array(d["next_token_logprobs"])
            diff = np.abs(lp - ref)
            print(
                f"  long {d['file']}: {len(ids)} ids, max |logprob diff| {diff.max():.2e} "
                f"(positions >= 512: {diff[511:].max():.2e}), sum {lp.sum():.4f} vs {d['sum_logprob']:.4f} "
                f"({time.time() - t:.0f}s)",
                flush=True,
            )
        del W


if __name__ == "__main__":
    main()
