//! What more than one benchmark program uses, and what only they use (moved out of the library
//! crates by issue 26). The programs are under `src/bin/`: each says what it measures and the
//! command that reproduces its result in BENCHMARKS.md.

use lm::ModelConfig;

/// Floating-point operations of one forward pass per token of a decoder (matmuls only,
/// `2 · params`), plus attention over `context` keys: the GFLOP/s in throughput reports.
pub fn flops_per_token(cfg: &ModelConfig, context: usize) -> f64 {
    let (h, l, ffn, v, kvh) = match cfg {
        ModelConfig::Gpt2(c) => (c.n_embd, c.n_layer, c.n_inner.unwrap_or(4 * c.n_embd), c.vocab_size, c.n_embd),
        ModelConfig::Llama(c) => (c.hidden_size, c.num_hidden_layers, c.intermediate_size, c.vocab_size, c.kv_heads() * c.head_dim()),
        ModelConfig::Gemma3(c) => (c.hidden_size, c.num_hidden_layers, c.intermediate_size, c.vocab_size, c.num_key_value_heads * c.head_dim),
    };
    let mlp = match cfg {
        ModelConfig::Gpt2(_) => 2 * h * ffn,
        ModelConfig::Llama(_) | ModelConfig::Gemma3(_) => 3 * h * ffn,
    };
    let per_layer = (2 * h * h + 2 * h * kvh + mlp) as f64 + 2.0 * (context * h) as f64;
    2.0 * (l as f64 * per_layer + (h * v) as f64)
}
