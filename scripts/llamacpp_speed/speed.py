"""llama.cpp reference for `cargo run --release -p bench --bin gguf_speed`: the same GGUF, the same
64-token prompt, the same lengths, on the same machine.

    python scripts/llamacpp_speed/speed.py [MODEL.gguf] [--threads 2] [--greedy]

Needs llama-cpp-python (CPU build; `pip install llama-cpp-python`, which compiles the llama.cpp it
vendors). On the 2-core box (an Intel Xeon VM with AVX-512 and AMX) the native build
(`CMAKE_ARGS="-DGGML_NATIVE=ON"`) crashes in its first `llama_decode` (SIGSEGV in
`ggml_backend_amx_mul_mat`), so it was built with AMX off and every other extension on:
`CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
-DGGML_AVX_VNNI=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" pip install llama-cpp-python`. Everything runs through its low-level ctypes bindings (`llama_cpp.llama_*`), i.e. in
llama.cpp's C code: Python only fills the batch arrays and loops.

- prefill: one `llama_decode` of the prompt (logits of its last position only), median of 5
  after a warm-up, at batch 1 and at batch 16 (16 copies of the prompt in one `llama_batch`,
  sequence ids 0..15), memory cleared before each.
- generate: 128 new tokens per sequence after the prompt, EOS ignored (the loop never checks it),
  sampled by llama.cpp's sampler chain top-p 0.95 -> temperature 1.0 -> dist(seed), one chain per
  sequence (seeds 0..15), `llama_sampler_sample(chain, ctx, i)` on the batch's i-th logits row.
  Batch 16: one context with `n_seq_max=16` (per-sequence KV cells, `kv_unified=False`), the 16
  prompts prefilled in one `llama_batch` of 16 x 64 tokens, then each step one `llama_batch` of
  16 tokens (one per sequence, its own seq id and position) and one `llama_decode`: the scheme of
  llama.cpp's `examples/batched`, except that each sequence gets its own copy of the prompt
  rather than a `llama_memory_seq_cp` of one (our generator prefills 16 copies too). The time
  includes that prefill; `decode-only` subtracts the median prefill of the same batch.
- Threads: `n_threads = n_threads_batch = 2`. Other context settings are llama.cpp's defaults
  (flash attention `auto`, f16 KV cache, n_ubatch 512), with n_batch 1024 so a 16 x 64 prefill is
  one call.
"""
import argparse
import ctypes
import os
import statistics
import sys
import time

import llama_cpp as L

PROMPT = (
    "Paciente varón de 67 años que acude al servicio de urgencias del Hospital General por dolor "
    "torácico opresivo de dos horas de evolución, irradiado al brazo izquierdo y acompañado de sudoración profusa. "
    "Antecedentes personales: hipertensión arterial en tratamiento con enalapril, diabetes mellitus tipo 2 y "
    "dislipemia. Exfumador desde hace diez años. En la exploración física presenta tensión arterial de 150/90 mmHg, "
    "frecuencia cardiaca de 98 latidos por minuto y saturación de oxígeno del 95% con aire ambiente."
)
PROMPT_LEN = 64
NEW = 128


def tokenize(model, text):
    vocab = L.llama_model_get_vocab(model)
    data = text.encode("utf-8")
    buf = (L.llama_token * (len(data) + 8))()
    n = L.llama_tokenize(vocab, data, len(data), buf, len(buf), True, False)
    if n < 0:
        raise RuntimeError("tokenization failed")
    return list(buf[:n])


class Ctx:
    def __init__(self, model, n_seq, threads):
        p = L.llama_context_default_params()
        p.n_ctx = n_seq * 256
        p.n_batch = max(1024, n_seq * PROMPT_LEN)
        p.n_seq_max = n_seq
        p.n_threads = threads
        p.n_threads_batch = threads
        p.no_perf = False
        self.ctx = L.llama_init_from_model(model, p)
        if not self.ctx:
            raise RuntimeError("llama_init_from_model failed")
        self.mem = L.llama_get_memory(self.ctx)
        self.batch = L.llama_batch_init(p.n_batch, 0, 1)
        self.flash = p.flash_attn_type

    def clear(self):
        L.llama_memory_clear(self.mem, True)

    def decode(self, entries):
        """entries: (token, pos, seq, wants_logits). Returns after the batch is computed."""
        b = self.batch
        for i, (tok, pos, seq, logits) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = 1 if logits else 0
        b.n_tokens = len(entries)
        rc = L.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        L.llama_synchronize(self.ctx)

    def prefill(self, ids, n_seq):
        """The prompt in each of n_seq sequences, one llama_decode; logits at each last token.
        Returns the batch index of each sequence's logits row."""
        entries = [(t, j, s, j == len(ids) - 1) for s in range(n_seq) for j, t in enumerate(ids)]
        self.decode(entries)
        return [s * len(ids) + len(ids) - 1 for s in range(n_seq)]


def sampler(seed, greedy):
    chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    if greedy:
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
    else:
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(0.95, 1))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(1.0))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed))
    return chain


def generate(c, ids, n_seq, new, greedy):
    """new tokens per sequence after the prompt; returns the tokens of each sequence."""
    c.clear()
    chains = [sampler(s, greedy) for s in range(n_seq)]
    rows = c.prefill(ids, n_seq)
    out = [[] for _ in range(n_seq)]
    pos = len(ids)
    # Seconds spent in sampling and in the decoding steps (after the prefill).
    spent = [0.0, 0.0]
    for step in range(new):
        toks = []
        t0 = time.perf_counter()
        for s in range(n_seq):
            t = L.llama_sampler_sample(chains[s], c.ctx, rows[s])
            out[s].append(t)
            toks.append(t)
        spent[0] += time.perf_counter() - t0
        if step == new - 1:
            break
        t0 = time.perf_counter()
        c.decode([(toks[s], pos, s, True) for s in range(n_seq)])
        spent[1] += time.perf_counter() - t0
        rows = list(range(n_seq))
        pos += 1
    for ch in chains:
        L.llama_sampler_free(ch)
    c.spent = spent
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=os.path.expanduser("~/.cache/synthdeid/models/gemma-3-270m/model.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--greedy", action="store_true")
    ap.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    args = ap.parse_args()
    L.llama_backend_init()
    # llama.cpp's log off (the callback must outlive every call, hence the global).
    global _quiet
    _quiet = L.llama_log_callback(lambda level, text, data: None)
    L.llama_log_set(_quiet, ctypes.c_void_p(0))
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = 0
    t = time.time()
    model = L.llama_model_load_from_file(args.model.encode(), mp)
    if not model:
        sys.exit(f"cannot load {args.model}")
    print(f"llama.cpp (llama-cpp-python {L.__version__}): {args.model} loaded in {time.time() - t:.1f} s, "
          f"{args.threads} threads; {L.llama_print_system_info().decode().strip()}")
    ids = tokenize(model, PROMPT)
    assert len(ids) >= PROMPT_LEN, len(ids)
    ids = ids[:PROMPT_LEN]
    print(f"llama.cpp: prompt {len(ids)} ids, first {ids[:4]}, checksum {sum((i + 1) * x for i, x in enumerate(ids))}")
    mode = "greedy" if args.greedy else "top-p 0.95, temperature 1.0"
    for b in [int(x) for x in args.batches.split(",")]:
        c = Ctx(model, b, args.threads)
        # Warm-up: graph allocation, thread pool.
        generate(c, ids, b, 8, args.greedy)
        times = []
        for rep in range(6):
            c.clear()
            t0 = time.perf_counter()
            c.prefill(ids, b)
            if rep > 0:
                times.append(time.perf_counter() - t0)
        pre = statistics.median(times)
        print(f"llama.cpp prefill: batch {b}: {b * PROMPT_LEN} prompt tokens in {pre:.3f} s = {b * PROMPT_LEN / pre:.0f} prompt tokens/s")
        t0 = time.perf_counter()
        out = generate(c, ids, b, NEW, args.greedy)
        secs = time.perf_counter() - t0
        n = sum(len(o) for o in out)
        print(f"llama.cpp generate: batch {b}: {n} new tokens in {secs:.2f} s = {n / secs:.1f} new tokens/s "
              f"(decode-only {n / (secs - pre):.1f}; {mode}, flash_attn_type {c.flash})")
        sample_ms, decode_ms = (x * 1e3 / NEW for x in c.spent)
        print(f"llama.cpp step: batch {b} (ms): llama_decode {decode_ms:.2f}, sampling {sample_ms:.2f}")
        L.llama_batch_free(c.batch)
        L.llama_free(c.ctx)
    L.llama_model_free(model)


if __name__ == "__main__":
    main()
