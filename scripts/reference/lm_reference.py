#!/usr/bin/env python3
"""Reference outputs of two real pretrained causal LMs, from HF transformers, as JSON test fixtures.

Each model is loaded by transformers from its llama.cpp GGUF file (the tokenizer is rebuilt from the
GGUF metadata, the weights are dequantized to float32), attention "eager", on the CPU with one thread.
For each model this writes `crates/lm/tests/reference/<name>.json` with

- `config`: the HF config transformers derived from the GGUF (`to_dict()`), the generation config,
  the library versions and the GGUF file's size and sha256;
- `logprobs`: for the first 3 MEDDOCAN dev documents (sorted file names), the input ids (the
  tokenizer's default special tokens, first 512 ids) and log p(next id | prefix) at every position;
  `logprobs_long`: the same for the first dev document with at least 1024 ids, cut to 1024 (past
  Gemma's 512-wide sliding window);
- `greedy`: 5 short Spanish clinical prompts, their ids and 32 greedy new ids (EOS suppressed by
  `min_new_tokens=32`), decoded;
- `tokenization`: for every MEDDOCAN document (train, dev, test) the sha256 of the ids of
  `tokenizer(text, add_special_tokens=False)` as little-endian u32 bytes, and their count;
  `tokenization_probes`: ids of a few short made-up strings (edge cases), text included;
- `dev_perplexity_per_word` (stage `perplexity`, slow): exp(total nll / total words) on MEDDOCAN dev.

No document text is printed or stored (only ids, hashes and counts). The transformers-converted
tokenizer of each model is saved to `--tokenizer-out/<name>/` (outside the repository).

Usage (see scripts/reference/README.md):
    OMP_NUM_THREADS=1 python scripts/reference/lm_reference.py                       # all but perplexity
    OMP_NUM_THREADS=1 python scripts/reference/lm_reference.py --stages perplexity    # merged into the fixture
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import glob  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

MODELS = {
    "gemma-3-270m": "gemma.gguf",
    "qwen2.5-coder-0.5b-instruct": "qwen.gguf",
}

PROMPTS = [
    "El paciente fue ingresado en el hospital por",
    "Mujer de 67 años que acude a urgencias por",
    "En la exploración física se objetiva",
    "Se realizó una tomografía computarizada abdominal que mostró",
    "Tras el tratamiento, el paciente evolucionó",
]

# Made-up strings (no document text) whose ids are stored in full: edge cases for a tokenizer port.
TOKENIZATION_PROBES = [
    "El paciente fue ingresado en el hospital por",
    " El paciente",
    "  dos espacios y   tres",
    "Línea uno\nLínea dos\n\nPárrafo\n\n\n\nfin",
    "\ttab\t\tdos tabs",
    "Dr. José Pérez-Núñez, C/ Alcalá 123, 28009 Madrid (España)",
    "Tel.: 91 555 12 34; NHC: 1234567-B; e-mail: jperez@hospital.es",
    "Fecha: 03/05/2006 a las 10:45 h.",
    "PCR 12,5 mg/dl; Hb 9.8 g/dL; T.A. 120/80 mmHg; 38,5 °C",
    "ácido acetilsalicílico — 100 mg/24 h «AAS» ±5% µg",
    "cafe\u0301 (e + combining acute) vs café",
    "emoji 😀 y CJK 漢字 y símbolo ⚕",
    "<bos> <eos> <|endoftext|> <|im_end|> <start_of_turn> literal",
    "\ufeffBOM al principio",
    "   ",
    "",
]

LOGPROB_DOCS = 3
LOGPROB_MAX_IDS = 512
LONG_IDS = 1024
GREEDY_NEW = 32
PPL_MAX_IDS = 1024
TOPK_POSITIONS = 16
TOPK = 10


def read_text(path):
    """The document exactly as on disk: UTF-8, no newline translation, a BOM kept as U+FEFF."""
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def ids_sha256(ids):
    return hashlib.sha256(np.asarray(ids, dtype="<u4").tobytes()).hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions():
    out = {"python": platform.python_version()}
    for pkg in ("transformers", "torch", "gguf", "tokenizers", "numpy", "sentencepiece", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            out[pkg] = None
    out["torch_num_threads"] = torch.get_num_threads()
    return out


@torch.inference_mode()
def next_token_logprobs(model, ids, chunk=128):
    """log p(ids[i+1] | ids[:i+1]) for i in 0..len-2: one forward, log-softmax in float64 of the f32 logits."""
    logits = model(torch.tensor([ids])).logits[0]  # (n, vocab) float32
    target = torch.tensor(ids[1:])
    out = []
    for s in range(0, len(ids) - 1, chunk):
        lp = torch.log_softmax(logits[s : min(s + chunk, len(ids) - 1)].double(), dim=-1)
        out.append(lp.gather(1, target[s : s + lp.shape[0], None])[:, 0])
    return torch.cat(out).numpy(), logits


def stage_logprobs_long(model, tok, data_dir):
    """One longer document: past Gemma's 512-wide sliding window, which the 512-id documents never reach."""
    for path in sorted(glob.glob(os.path.join(data_dir, "dev", "*.txt"))):
        full = tok(read_text(path)).input_ids
        if len(full) >= LONG_IDS:
            break
    ids = full[:LONG_IDS]
    t = time.time()
    lp, _ = next_token_logprobs(model, ids)
    print(f"  logprobs long doc: {len(ids)} ids, {time.time() - t:.1f}s", flush=True)
    return {
        "definition": (
            f"The first MEDDOCAN dev document (sorted file names) with at least {LONG_IDS} ids "
            f"(tokenizer(text).input_ids, default special tokens), truncated to {LONG_IDS} ids; otherwise as "
            "`logprobs`. With Gemma's sliding window of 512 (a query sees itself and the 511 ids before it "
            "in the sliding layers), positions >= 512 differ from a full-attention model."
        ),
        "split": "dev",
        "file": os.path.basename(path),
        "n_ids_before_truncation": len(full),
        "input_ids": ids,
        "next_token_logprobs": [round(float(x), 6) for x in lp],
        "sum_logprob": float(lp.sum()),
    }


def stage_logprobs(model, tok, data_dir):
    files = sorted(glob.glob(os.path.join(data_dir, "dev", "*.txt")))[:LOGPROB_DOCS]
    docs = []
    for i, path in enumerate(files):
        full = tok(read_text(path)).input_ids
        ids = full[:LOGPROB_MAX_IDS]
        t = time.time()
        lp, logits = next_token_logprobs(model, ids)
        entry = {
            "split": "dev",
            "file": os.path.basename(path),
            "n_ids_before_truncation": len(full),
            "input_ids": ids,
            "next_token_logprobs": [round(float(x), 6) for x in lp],
            "sum_logprob": float(lp.sum()),
        }
        if i == 0:
            top = []
            for pos in range(min(TOPK_POSITIONS, len(ids))):
                v, ix = torch.topk(logits[pos], TOPK)
                top.append({"position": pos, "ids": ix.tolist(), "logits": [round(float(x), 5) for x in v]})
            entry["top_logits"] = top
        docs.append(entry)
        print(f"  logprobs doc {i}: {len(ids)} ids, {time.time() - t:.1f}s", flush=True)
    return {
        "definition": (
            "input_ids = tokenizer(text).input_ids (default special tokens) truncated to the first "
            f"{LOGPROB_MAX_IDS}; next_token_logprobs[i] = log p(input_ids[i+1] | input_ids[..=i]) for i in "
            "0..len-2 from one forward pass over input_ids (positions 0..len-1, no padding, no cache); "
            "log-softmax in float64 of the float32 logits, rounded to 6 decimals; sum_logprob unrounded. "
            f"top_logits: the {TOPK} largest float32 logits (rounded to 5 decimals) at the first "
            f"{TOPK_POSITIONS} positions of the first document."
        ),
        "docs": docs,
    }


@torch.inference_mode()
def manual_greedy(model, ids, n_new, eos_ids):
    """Greedy without a KV cache: a full forward per step, EOS logits set to -inf (as min_new_tokens does)."""
    seq = list(ids)
    for _ in range(n_new):
        logits = model(torch.tensor([seq])).logits[0, -1].clone()
        logits[eos_ids] = -float("inf")
        seq.append(int(torch.argmax(logits)))
    return seq[len(ids) :]


def stage_greedy(model, tok):
    gen = model.generation_config
    eos = gen.eos_token_id if gen.eos_token_id is not None else model.config.eos_token_id
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    out = []
    for prompt in PROMPTS:
        ids = tok(prompt).input_ids
        t = time.time()
        with torch.inference_mode():
            res = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                do_sample=False,
                min_new_tokens=GREEDY_NEW,
                max_new_tokens=GREEDY_NEW,
                pad_token_id=model.config.pad_token_id if model.config.pad_token_id is not None else eos_ids[0],
            )
        new = res[0, len(ids) :].tolist()
        manual = manual_greedy(model, ids, GREEDY_NEW, eos_ids)
        out.append(
            {
                "prompt": prompt,
                "input_ids": ids,
                "new_ids": new,
                "text": tok.decode(new, skip_special_tokens=False),
                "no_cache_loop_agrees": manual == new,
            }
        )
        print(f"  greedy {prompt[:30]!r}: {time.time() - t:.1f}s, no-cache loop agrees: {manual == new}", flush=True)
    return {
        "definition": (
            "input_ids = tokenizer(prompt).input_ids (default special tokens); new_ids = model.generate("
            f"do_sample=False, min_new_tokens={GREEDY_NEW}, max_new_tokens={GREEDY_NEW}) with its KV cache: "
            "argmax at every step, with the logits of the EOS ids below set to -inf by min_new_tokens (so no "
            "EOS can appear and generation never stops early); no repetition penalty or other processors. "
            "text = tokenizer.decode(new_ids, skip_special_tokens=False). no_cache_loop_agrees: the same "
            "greedy loop with a full forward per step and no cache gives the same ids."
        ),
        "eos_ids_suppressed": eos_ids,
        "prompts": out,
    }


def stage_tokenization(tok, data_dir):
    table = {}
    roundtrip = 0
    total = 0
    t = time.time()
    for split in ("train", "dev", "test"):
        for path in sorted(glob.glob(os.path.join(data_dir, split, "*.txt"))):
            text = read_text(path)
            ids = tok(text, add_special_tokens=False).input_ids
            table[f"{split}/{os.path.basename(path)}"] = {"sha256": ids_sha256(ids), "n": len(ids)}
            roundtrip += tok.decode(ids, skip_special_tokens=False) == text
            total += len(ids)
    print(f"  tokenized {len(table)} docs, {total} ids, {time.time() - t:.1f}s", flush=True)
    probes = [
        {
            "text": s,
            "ids": tok(s, add_special_tokens=False).input_ids,
            "ids_default": tok(s).input_ids,
            "decoded": tok.decode(tok(s, add_special_tokens=False).input_ids, skip_special_tokens=False),
        }
        for s in TOKENIZATION_PROBES
    ]
    return (
        {
            "definition": (
                "For every MEDDOCAN {train,dev,test}/*.txt, the text as on disk (bytes decoded as UTF-8, "
                "no newline translation, a BOM kept as U+FEFF): ids = tokenizer(text, add_special_tokens="
                "False).input_ids; sha256 = sha256 of the ids as little-endian u32 bytes (hex), n = len(ids). "
                "Keyed by split/file name."
            ),
            "n_docs": len(table),
            "total_ids": total,
            "decode_roundtrips": roundtrip,
            "docs": table,
        },
        {
            "definition": "ids = tokenizer(text, add_special_tokens=False).input_ids; ids_default = "
            "tokenizer(text).input_ids; decoded = tokenizer.decode(ids, skip_special_tokens=False)",
            "probes": probes,
        },
    )


@torch.inference_mode()
def stage_perplexity(model, tok, data_dir):
    files = sorted(glob.glob(os.path.join(data_dir, "dev", "*.txt")))
    per_doc = []
    tot_nll = 0.0
    tot_words = 0
    tot_tokens = 0
    t0 = time.time()
    for i, path in enumerate(files):
        text = read_text(path)
        enc = tok(text, return_offsets_mapping=True)
        full = enc.input_ids
        ids = full[:PPL_MAX_IDS]
        end_char = len(text) if len(full) <= PPL_MAX_IDS else max(e for _, e in enc.offset_mapping[:PPL_MAX_IDS])
        words = len(text[:end_char].split())
        lp, _ = next_token_logprobs(model, ids)
        nll = -float(lp.sum())
        per_doc.append(
            {
                "file": os.path.basename(path),
                "n_ids": len(ids),
                "n_ids_before_truncation": len(full),
                "nll": nll,
                "words": words,
                "words_full_doc": len(text.split()),
            }
        )
        tot_nll += nll
        tot_words += words
        tot_tokens += len(ids) - 1
        if i % 25 == 0:
            print(f"  ppl doc {i}/{len(files)}: {time.time() - t0:.0f}s", flush=True)
    return {
        "definition": (
            "Over the 250 MEDDOCAN dev documents (sorted): ids = tokenizer(text).input_ids (default special "
            f"tokens: Gemma prepends <bos>, Qwen adds nothing) truncated to the first {PPL_MAX_IDS}; one "
            "forward per document; nll = -sum_{i>=1} log p(ids[i] | ids[:i]) (the first id is not predicted); "
            "words = len(text[:end].split()) (Python whitespace split) where end = len(text) if the document "
            f"was not truncated, else the end char offset of the last kept id; value = exp(sum nll / sum words). "
            "per_token = exp(sum nll / sum predicted ids)."
        ),
        "value": math.exp(tot_nll / tot_words),
        "per_token": math.exp(tot_nll / tot_tokens),
        "total_nll": tot_nll,
        "total_words": tot_words,
        "total_predicted_ids": tot_tokens,
        "docs_truncated": sum(d["n_ids_before_truncation"] > PPL_MAX_IDS for d in per_doc),
        "seconds": round(time.time() - t0, 1),
        "per_doc": per_doc,
    }


def load(models_dir, gguf):
    t = time.time()
    tok = AutoTokenizer.from_pretrained(models_dir, gguf_file=gguf)
    t_tok = time.time() - t
    t = time.time()
    model = AutoModelForCausalLM.from_pretrained(
        models_dir, gguf_file=gguf, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    t_model = time.time() - t
    assert all(p.dtype == torch.float32 for p in model.parameters()), "weights not dequantized to f32"
    assert model.config._attn_implementation == "eager"
    return tok, model, {"tokenizer_load_s": round(t_tok, 1), "model_load_s": round(t_model, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", default="/work/models-dev")
    ap.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data", "meddocan"))
    ap.add_argument("--out-dir", default=os.path.join(REPO, "crates", "lm", "tests", "reference"))
    ap.add_argument("--tokenizer-out", default="/work/models-dev/ref-tokenizers")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated names from: " + ", ".join(MODELS))
    ap.add_argument(
        "--stages",
        default="config,tokenization,logprobs,logprobs_long,greedy",
        help="comma-separated: config,tokenization,logprobs,logprobs_long,greedy,perplexity (slow, not in the "
        "default); merged into an existing fixture",
    )
    args = ap.parse_args()
    stages = set(args.stages.split(","))
    os.makedirs(args.out_dir, exist_ok=True)

    for name in args.models.split(","):
        gguf = MODELS[name]
        gguf_path = os.path.join(args.models_dir, gguf)
        out_path = os.path.join(args.out_dir, f"{name}.json")
        fixture = {}
        if os.path.exists(out_path):
            with open(out_path) as f:
                fixture = json.load(f)
        print(f"== {name} ({gguf})", flush=True)
        tok, model, timings = load(args.models_dir, gguf)
        fixture["name"] = name
        fixture["source"] = (
            "transformers AutoTokenizer/AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., "
            "dtype=torch.float32, attn_implementation='eager') on CPU, 1 thread; "
            "scripts/reference/lm_reference.py"
        )
        if "config" in stages:
            tok_dir = os.path.join(args.tokenizer_out, name)
            os.makedirs(tok_dir, exist_ok=True)
            tok.save_pretrained(tok_dir)
            tok.backend_tokenizer.save(os.path.join(tok_dir, "tokenizer.json"))
            fixture["config"] = {
                "hf_config": model.config.to_dict(),
                "generation_config": model.generation_config.to_dict(),
                "versions": versions(),
                "gguf": {"file": gguf, "bytes": os.path.getsize(gguf_path), "sha256": file_sha256(gguf_path)},
                "tokenizer": {
                    "class": type(tok).__name__,
                    "len": len(tok),
                    "bos_token": tok.bos_token,
                    "eos_token": tok.eos_token,
                    "pad_token": tok.pad_token,
                    "unk_token": tok.unk_token,
                    "adds_bos_by_default": tok("a").input_ids[:1] == [tok.bos_token_id]
                    if tok.bos_token_id is not None
                    else False,
                    "tokenizer_json_sha256": file_sha256(os.path.join(tok_dir, "tokenizer.json")),
                },
                "timings": timings,
            }
        if "tokenization" in stages:
            fixture["tokenization"], fixture["tokenization_probes"] = stage_tokenization(tok, args.data_dir)
        if "logprobs" in stages:
            fixture["logprobs"] = stage_logprobs(model, tok, args.data_dir)
        if "logprobs_long" in stages:
            fixture["logprobs_long"] = stage_logprobs_long(model, tok, args.data_dir)
        if "greedy" in stages:
            fixture["greedy"] = stage_greedy(model, tok)
        if "perplexity" in stages:
            fixture["dev_perplexity_per_word"] = stage_perplexity(model, tok, args.data_dir)
            print(f"  dev perplexity per word: {fixture['dev_perplexity_per_word']['value']:.4f}", flush=True)
        with open(out_path, "w") as f:
            json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"  wrote {out_path} ({os.path.getsize(out_path)} bytes)", flush=True)
        del model


if __name__ == "__main__":
    sys.exit(main())
