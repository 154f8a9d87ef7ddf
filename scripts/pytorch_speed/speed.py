"""PyTorch + transformers reference for the speed benchmarks of issues 3 and 4, run on the same
machine as the Rust benchmarks so that the ratio does not depend on which host the VM landed on.

    python scripts/pytorch_speed/speed.py [gpt2-train|gpt2-generate|gpt2-small|llama-train|encoder|bert-base|all]

Shapes match `cargo run --release -p lm --example speed` (GPT-2 6 x 384, 6 heads, vocab 32000,
training batch 8 x 256 with AdamW and dropout 0.1; generation prompt 16, 256 new tokens, top-p 0.95,
batch 1 and 16; `gpt2-small`: 12 x 768, 12 heads, vocab 50257, training and batch-1 generation, as
`cargo run --release -p lm --example speed -- small 12 768 12 50257`) and `cargo run --release -p ner --example encoder_speed` (MiniLM-L6 shape: BERT 6 x
384, 12 heads, FFN 1536, vocab 30522, token classification, batch 16 x 128) and BERT-base (12 x 768,
FFN 3072) with `--layers 12 --hidden 768 --ffn 3072 --steps 3`. Threads: torch's
default (one per core). Weights are random: speed does not depend on them.
"""
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
    """As `SPEED_ARCH=llama cargo run --release -p lm --example speed -- train`: 6 x 384, 6 heads,
    3 key/value heads, SwiGLU FFN 1024, vocab 32000, batch 8 x 256."""
    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
                                     num_attention_heads=6, num_key_value_heads=3, max_position_embeddings=1024))
    ids = torch.randint(0, 32000, (8, 256))
    mean = train_step_seconds(m, steps, input_ids=ids, labels=ids)
    print(f"pytorch llama train: batch 8 x 256: {mean:.2f} s/step, {8 * 256 / mean:.0f} tokens/s")


def encoder(steps=4, base=False):
    torch.manual_seed(0)
    if base:
        cfg = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, num_labels=45)
    else:
        cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536, num_labels=45)
    m = BertForTokenClassification(cfg)
    ids = torch.randint(0, 30522, (16, 128))
    labels = torch.randint(0, 45, (16, 128))
    mean = train_step_seconds(m, steps, input_ids=ids, labels=labels)
    name = "bert-base" if base else "encoder"
    print(f"pytorch {name} train: batch 16 x 128: {16 * 128 / mean:.0f} tokens/s")
    m.eval()
    with torch.no_grad():
        m(input_ids=ids)
        t0 = time.time()
        for _ in range(steps):
            m(input_ids=ids)
        s = (time.time() - t0) / steps
    print(f"pytorch {name} predict: batch 16 x 128: {16 * 128 / s:.0f} tokens/s")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
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
