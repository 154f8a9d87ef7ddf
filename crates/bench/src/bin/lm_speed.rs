//! Measures training tokens/s and generation new tokens/s of a GPT-2 (or Llama) decoder with random
//! weights, beside PyTorch's `scripts/pytorch_speed/speed.py gpt2-train|gpt2-generate`
//! (alternated by `scripts/pytorch_speed/compare.sh`). BENCHMARKS.md, current results, "GPT-2
//! (6 × 384) training / generation at batch 16 vs PyTorch"; alone:
//!
//!     cargo run --release -p bench --bin lm_speed -- all
//!
//! Defaults: 6 layers × 384 hidden × 6 heads, vocabulary 32000. Training: batch 8 × 256, AdamW,
//! dropout 0.1 (HF's GPT-2 default). Generation: prompt 16 tokens, 256 new tokens, top-p 0.95,
//! at batch 1 and 16 (no early stop). Weights are random; speed does not depend on them.
//! GPT-2 small: `SPEED_STEPS=2 cargo run --release -p bench --bin lm_speed -- small --layers 12
//! --hidden 768 --heads 12 --vocab 50257`.

use std::time::Instant;

use candle_core::{Device, Tensor};
use clap::{Parser, ValueEnum};
use lm::data::Boundaries;
use lm::models::Gpt2Config;
use lm::{Decoder, DecoderGenerator, LmTokenizer, ModelConfig, SamplingConfig};
use nn::{AdamW, AdamWConfig, Mode};
use rand::SeedableRng;

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum What {
    /// Training and generation at batch 1 and 16.
    All,
    Train,
    Generate,
    /// Training and batch-1 generation only (for GPT-2 small, as the PyTorch reference).
    Small,
    /// One batch-16 decoding step cut into its parts.
    Step,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Arch {
    Gpt2,
    /// A Llama of the same size: RMSNorm, rotary, SwiGLU with FFN 8/3 × hidden, grouped-query
    /// attention with half as many key/value heads.
    Llama,
}

#[derive(Parser)]
#[command(about = "Training and generation speed of a GPT-2 / Llama decoder on random weights")]
struct Cli {
    #[arg(value_enum, default_value = "all")]
    what: What,
    #[arg(long, default_value_t = 6)]
    layers: usize,
    #[arg(long, default_value_t = 384)]
    hidden: usize,
    #[arg(long, default_value_t = 6)]
    heads: usize,
    #[arg(long, default_value_t = 32000)]
    vocab: usize,
    #[arg(long, value_enum, env = "SPEED_ARCH", default_value = "gpt2")]
    arch: Arch,
    /// Timed training steps (after one warm-up step).
    #[arg(long, env = "SPEED_STEPS", default_value_t = 4)]
    steps: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (what, layers, hidden, heads, vocab) = (cli.what, cli.layers, cli.hidden, cli.heads, cli.vocab);
    let llama = cli.arch == Arch::Llama;
    let cfg = if llama {
        ModelConfig::Llama(lm::models::llama::LlamaConfig::new(vocab, 1024, hidden, layers, heads, (heads / 2).max(1), hidden * 8 / 3))
    } else {
        ModelConfig::Gpt2(Gpt2Config::new(vocab, 1024, hidden, layers, heads))
    };
    let arch = if llama { "Llama" } else { "GPT-2" };
    println!("{arch} {layers} layers × {hidden} hidden × {heads} heads, vocab {vocab}, {} threads", rayon::current_num_threads());
    if matches!(what, What::Train | What::All | What::Small) {
        bench_train(&cfg, vocab as u32, cli.steps)?;
    }
    if what == What::Step {
        bench_step(&cfg, vocab as u32)?;
    }
    if matches!(what, What::Generate | What::All | What::Small) {
        bench_generate(&cfg, vocab as u32, if what == What::Small { &[1] } else { &[1, 16] })?;
    }
    Ok(())
}

fn bench_train(cfg: &ModelConfig, vocab: u32, steps: usize) -> anyhow::Result<()> {
    let model = Decoder::new(cfg, &Device::Cpu, 0)?;
    let vars = model.params.vars();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig { lr: 1e-4, ..Default::default() }, |_| true)?;
    let (b, t) = (8, 256);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let rows: Vec<Vec<u32>> = (0..b).map(|_| (0..=t).map(|_| rand::Rng::random_range(&mut rng, 0..vocab)).collect()).collect();
    let refs: Vec<&Vec<u32>> = rows.iter().collect();
    let mut times = Vec::new();
    for s in 0..=steps {
        let t0 = Instant::now();
        let mut drop_rng = nn::Rng::seed_from_u64(s as u64);
        let loss = lm::train::batch_loss(&model, &refs, &Device::Cpu, &mut Mode::Train(&mut drop_rng))?;
        let grads = lm::train::trainable_grads(loss.backward()?, &vars);
        let (_, scale) = nn::clip_scale(&grads, &vars, 1.0)?;
        opt.step(&grads, 1e-4, scale)?;
        if s > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let tps = (b * t) as f64 / mean;
    let gflops = 3.0 * bench::flops_per_token(cfg, t / 2) * tps / 1e9;
    println!("train: batch {b} × {t}: {mean:.2} s/step, {tps:.0} tokens/s ({gflops:.0} GFLOP/s)");
    Ok(())
}

/// `step`: one batch-16 decoding step cut into its parts (layers, LM head, copy of the logits to
/// the host, sampling), each the mean over 128 steps from a 16-token prompt, in milliseconds.
fn bench_step(cfg: &ModelConfig, vocab: u32) -> anyhow::Result<()> {
    let mut model = Decoder::new(cfg, &Device::Cpu, 0)?;
    model.freeze()?;
    model.prepare_decoding()?;
    let (b, t0, steps) = (16usize, 16usize, 128usize);
    let ids: Vec<u32> = (0..b * t0).map(|i| (i as u32 * 131) % vocab).collect();
    let positions: Vec<u32> = (0..b * t0).map(|i| (i % t0) as u32).collect();
    let mut cache = model.new_cache(b, t0 + steps)?;
    let mut mode = Mode::Eval;
    let h = model.forward(&Tensor::from_vec(ids, (b, t0), &Device::Cpu)?, &Tensor::from_vec(positions, (b, t0), &Device::Cpu)?, None, Some(&mut cache), &mut mode)?;
    let mut logits = model.logits(&h.narrow(1, t0 - 1, 1)?.squeeze(1)?)?;
    let sampling = SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.95 };
    let mut rngs: Vec<rand_chacha::ChaCha8Rng> = (0..b as u64).map(rand_chacha::ChaCha8Rng::seed_from_u64).collect();
    let mut spent = [0f64; 4];
    for s in 0..steps {
        let t = Instant::now();
        let l: Vec<Vec<f32>> = logits.to_vec2()?;
        let t_copy = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let toks: Vec<u32> = l.iter().zip(rngs.iter_mut()).map(|(l, r)| lm::sampling::sample(l, &sampling, lm::sampling::Walk::IdOrder, r) as u32).collect();
        let t_sample = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let past = (t0 + s) as u32;
        let h = model.forward(&Tensor::from_vec(toks, (b, 1), &Device::Cpu)?, &Tensor::from_vec(vec![past; b], (b, 1), &Device::Cpu)?, None, Some(&mut cache), &mut mode)?;
        let t_layers = t.elapsed().as_secs_f64();
        let t = Instant::now();
        logits = model.logits(&h.squeeze(1)?)?;
        let t_head = t.elapsed().as_secs_f64();
        for (acc, x) in spent.iter_mut().zip([t_layers, t_head, t_copy, t_sample]) {
            *acc += x * 1e3 / steps as f64;
        }
    }
    let [layers, head, copy, sample] = spent;
    println!("step (batch {b}, ms): layers {layers:.2}, LM head {head:.2}, logits to host {copy:.2}, sampling (one thread) {sample:.2}, total {:.2}", layers + head + copy + sample);
    Ok(())
}

fn bench_generate(cfg: &ModelConfig, vocab: u32, batches: &[usize]) -> anyhow::Result<()> {
    let model = Decoder::new(cfg, &Device::Cpu, 0)?;
    // The tokenizer is not used by generate_ids; any will do.
    let tok = LmTokenizer::train_bpe(["a b"].into_iter(), 300)?;
    let mut g = DecoderGenerator::new(model, tok, Boundaries { start: Some(0), end: 0 })?;
    g.stop.clear();
    let sampling = SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.95 };
    let (prompt_len, new) = (16, 256);
    for &batch in batches {
        let prompts: Vec<Vec<u32>> = (0..batch).map(|i| (0..prompt_len as u32).map(|j| (i as u32 * 977 + j * 131) % vocab).collect()).collect();
        let seqs: Vec<(&[u32], u64)> = prompts.iter().enumerate().map(|(i, p)| (p.as_slice(), i as u64)).collect();
        // Warm-up (allocations, thread pool), then the measured run.
        g.generate_ids(&seqs[..1], 8, &sampling)?;
        let t0 = Instant::now();
        let out = g.generate_ids(&seqs, new, &sampling)?;
        let secs = t0.elapsed().as_secs_f64();
        let n: usize = out.iter().map(|o| o.len()).sum();
        let ctx = prompt_len + new / 2;
        let gflops = bench::flops_per_token(cfg, ctx) * n as f64 / secs / 1e9;
        println!("generate: batch {batch}: {n} new tokens in {secs:.2} s = {:.0} new tokens/s ({gflops:.0} GFLOP/s)", n as f64 / secs);
    }
    let _ = Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu)?;
    Ok(())
}
