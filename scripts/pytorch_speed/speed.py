"""PyTorch + transformers reference for the speed benchmarks of issues 3 and 4, run on the same
machine as the Rust benchmarks so that the ratio does not depend on which host the VM landed on.

    python scripts/pytorch_speed/speed.py [gpt2-train|gpt2-generate|gpt2-small|llama-train|encoder|bert-base|all]
    python scripts/pytorch_speed/speed.py gemma-lora [MODEL.gguf]
    python scripts/pytorch_speed/speed.py [encoder-predict|bert-base-predict|e5 [MODEL_DIR]]

Shapes match `cargo run --release -p bench --bin lm_speed` (GPT-2 6 x 384, 6 heads, vocab 32000,
training batch 8 x 256 with AdamW and dropout 0.1; generation prompt 16, 256 new tokens, top-p 0.95,
batch 1 and 16; `gpt2-small`: 12 x 768, 12 heads, vocab 50257, training and batch-1 generation, as
`cargo run --release -p bench --bin lm_speed -- small --layers 12 --hidden 768 --heads 12 --vocab 50257`) and `cargo run --release -p bench --bin encoder_speed` (MiniLM-L6 shape: BERT 6 x
384, 12 heads, FFN 1536, vocab 30522, token classification, batch 16 x 128) and BERT-base (12 x 768,
FFN 3072) with `--layers 12 --hidden 768 --ffn 3072 --steps 3`; `encoder-predict` and `bert-base-predict`
time prediction only, and `e5` the multilingual-E5-small checkpoint's encoder (`encoder_speed --model DIR`). Threads: torch's
default (one per core). Weights are random: speed does not depend on them.

`gemma-lora` (not in `all`): LoRA training of the real Gemma-3-270M, as
`cargo run --release -p bench --bin gguf_speed -- lora`: transformers loads the GGUF
(`from_pretrained(dir, gguf_file=..., dtype=float32)`, dequantized to f32, default attention
implementation), peft adds `LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "v_proj"],
lora_dropout=0.05)`; batch 8 x 256 random ids (257 per row: inputs and shifted targets, the loss
over the whole vocabulary), AdamW on the adapters, clipping at 1.0; the mean of 3 steps after a
warm-up step (SPEED_STEPS=N for N), with forward + loss, backward and clipping + optimizer apart. 2 threads.
"""
import os
import sys
import time

import torch
from transformers import BertConfig, BertForTokenClassification, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM


def train_step_seconds(m, steps, **batch):
    """Mean seconds of a training step (forward, loss, backward, clipping, AdamW) over `steps`
    steps after one warm-up step, as the Rust benchmarks measure it."""
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    times = []
    for s in range(steps + 1):
        t0 = time.time()
        loss = m(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if s > 0:
            times.append(time.time() - t0)
    return sum(times) / len(times)


def gpt2(layers=6, hidden=384, heads=6, vocab=32000):
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=1024, n_embd=hidden, n_layer=layers, n_head=heads))


def gpt2_train(steps=4, small=False):
    torch.manual_seed(0)
    m = gpt2(12, 768, 12, 50257) if small else gpt2()
    ids = torch.randint(0, m.config.vocab_size, (8, 256))
    mean = train_step_seconds(m, steps, input_ids=ids, labels=ids)
    print(f"pytorch gpt2{'-small' if small else ''} train: batch 8 x 256: {mean:.2f} s/step, {8 * 256 / mean:.0f} tokens/s")


@torch.no_grad()
def gpt2_generate(small=False):
    torch.manual_seed(0)
    m = (gpt2(12, 768, 12, 50257) if small else gpt2()).eval()
    for batch in (1,) if small else (1, 16):
        ids = torch.randint(0, m.config.vocab_size, (batch, 16))
        m.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=True, top_p=0.95, top_k=0, pad_token_id=0)
        t0 = time.time()
        out = m.generate(ids, max_new_tokens=256, min_new_tokens=256, do_sample=True, top_p=0.95, top_k=0, pad_token_id=0)
        s = time.time() - t0
        n = (out.shape[1] - 16) * batch
        print(f"pytorch gpt2{'-small' if small else ''} generate: batch {batch}: {n} new tokens in {s:.2f} s = {n / s:.0f} new tokens/s")


def llama_train(steps=4):
    """As `SPEED_ARCH=llama cargo run --release -p bench --bin lm_speed -- train`: 6 x 384, 6 heads,
    3 key/value heads, SwiGLU FFN 1024, vocab 32000, batch 8 x 256."""
    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
                                     num_attention_heads=6, num_key_value_heads=3, max_position_embeddings=1024))
    ids = torch.randint(0, 32000, (8, 256))
    mean = train_step_seconds(m, steps, input_ids=ids, labels=ids)
    print(f"pytorch llama train: batch 8 x 256: {mean:.2f} s/step, {8 * 256 / mean:.0f} tokens/s")


# Prediction's weight and activation format: SPEED_DTYPE=bf16 times PyTorch's own bf16 inference
# (oneDNN's AVX-512 BF16 kernels), the peer of `encoder_speed --precision bf16`.
PREDICT_DTYPE = torch.bfloat16 if os.environ.get("SPEED_DTYPE") == "bf16" else torch.float32
DTYPE_TAG = " (bf16)" if PREDICT_DTYPE is torch.bfloat16 else ""


def encoder(steps=4, base=False, predict_only=False):
    torch.manual_seed(0)
    if base:
        cfg = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, num_labels=45)
    else:
        cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536, num_labels=45)
    m = BertForTokenClassification(cfg)
    ids = torch.randint(0, 30522, (16, 128))
    labels = torch.randint(0, 45, (16, 128))
    name = "bert-base" if base else "encoder"
    if not predict_only:
        mean = train_step_seconds(m, steps, input_ids=ids, labels=labels)
        print(f"pytorch {name} train: batch 16 x 128: {16 * 128 / mean:.0f} tokens/s")
    m.eval()
    if PREDICT_DTYPE is not torch.float32:
        m = m.to(PREDICT_DTYPE)
    with torch.no_grad():
        m(input_ids=ids)
        t0, c0 = time.time(), time.process_time()
        for _ in range(steps):
            m(input_ids=ids)
        s = (time.time() - t0) / steps
        c = (time.process_time() - c0) / steps
    print(f"pytorch {name} predict{DTYPE_TAG}: batch 16 x 128: {16 * 128 / s:.0f} tokens/s, {16 * 128 / c:.0f} per CPU-second")


@torch.no_grad()
def e5(path, steps=4):
    """Prediction with the multilingual-E5-small checkpoint as `models fetch` lays it out (an HF BERT
    directory), as `encoder_speed --model DIR --predict-only`: batch 16 x 128 random ids, the
    encoder's hidden states (no head)."""
    import os

    from transformers import AutoModel

    torch.manual_seed(0)
    m = AutoModel.from_pretrained(os.path.expanduser(path), dtype=PREDICT_DTYPE).eval()
    ids = torch.randint(5, m.config.vocab_size, (16, 128))
    m(input_ids=ids)
    t0, c0 = time.time(), time.process_time()
    for _ in range(steps):
        m(input_ids=ids)
    s = (time.time() - t0) / steps
    c = (time.process_time() - c0) / steps
    print(f"pytorch e5 predict{DTYPE_TAG}: batch 16 x 128: {16 * 128 / s:.0f} tokens/s, {16 * 128 / c:.0f} per CPU-second")


def gemma_lora(path, steps=3):
    import os

    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    path = os.path.expanduser(path)
    t0 = time.time()
    m = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32)
    m = get_peft_model(m, LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.05, task_type="CAUSAL_LM"))
    params = [p for p in m.parameters() if p.requires_grad]
    total = sum(p.numel() for p in m.parameters())
    print(f"pytorch gemma-lora: {path} loaded in {time.time() - t0:.1f} s; {sum(p.numel() for p in params)} trainable of {total} "
          f"parameters; attention {m.config._attn_implementation}; {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    rows = torch.randint(0, m.config.vocab_size, (8, 257))
    inputs, targets = rows[:, :-1], rows[:, 1:]
    m.train()
    opt = torch.optim.AdamW(params, lr=1e-4)
    spent = [0.0, 0.0, 0.0]
    for s in range(steps + 1):
        t0 = time.time()
        logits = m(input_ids=inputs).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        t1 = time.time()
        loss.backward()
        t2 = time.time()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        t3 = time.time()
        del logits
        print(f"pytorch gemma-lora: step {s}: loss {loss.item():.3f}, {t3 - t0:.2f} s")
        if s > 0:
            for i, x in enumerate((t1 - t0, t2 - t1, t3 - t2)):
                spent[i] += x / steps
    fwd, bwd, optim = spent
    mean = fwd + bwd + optim
    print(f"pytorch gemma-lora train: batch 8 x 256: {mean:.2f} s/step (forward + loss {fwd:.2f}, backward {bwd:.2f}, "
          f"clip + AdamW {optim:.3f}), {8 * 256 / mean:.0f} tokens/s")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what == "gemma-lora":
        import peft
        import transformers

        print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
        import os

        gemma_lora(sys.argv[2] if len(sys.argv) > 2 else "~/.cache/synthdeid/models/gemma-3-270m/model.gguf", int(os.environ.get("SPEED_STEPS", 3)))
        sys.exit(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if what in ("gpt2-train", "all"):
        gpt2_train()
    if what in ("gpt2-generate", "all"):
        gpt2_generate()
    if what == "llama-train":
        llama_train()
    if what == "gpt2-small":
        gpt2_train(steps=2, small=True)
        gpt2_generate(small=True)
    if what in ("encoder", "all"):
        encoder()
    if what in ("bert-base", "all"):
        encoder(steps=3, base=True)
    if what == "encoder-predict":
        encoder(predict_only=True)
    if what == "bert-base-predict":
        encoder(steps=3, base=True, predict_only=True)
    if what == "e5":
        e5(sys.argv[2] if len(sys.argv) > 2 else "~/.cache/synthdeid/models/multilingual-e5-small")
