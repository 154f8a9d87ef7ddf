//! Measures the speed of a GGUF checkpoint (Gemma-3-270M by default) under our generator, to set
//! beside llama.cpp on the same file (`scripts/llamacpp_speed/speed.py`, alternated by
//! `scripts/llamacpp_speed/compare.sh`: BENCHMARKS.md, current results, "Gemma-3-270M generation
//! … vs llama.cpp") and LoRA training beside PyTorch + PEFT (`scripts/pytorch_speed/compare.sh
//! gemma-lora`: "Gemma-3-270M LoRA training tokens/s vs PyTorch + PEFT"). Alone:
//!
//!     cargo run --release -p bench --bin gguf_speed -- [all|generate|prefill|step|lora] [--model MODEL.gguf|DIR] [--precision f32|bf16]
//!
//! The prompt is the fixed Spanish clinical text below, tokenized with the model's tokenizer after
//! its BOS and cut to 64 ids (the same ids as llama.cpp's tokenizer gives; both print a checksum).
//!
//! - `prefill`: prompt tokens/s of one timed forward of the prompt through the model with a KV
//!   cache plus the LM head on its last position (median of 5 after a warm-up), at batch 1 and at
//!   batch 16 (16 copies of the prompt).
//! - `generate` (prefill, then generation): new tokens/s of `DecoderGenerator::generate_ids` for `--new` (128) new tokens per
//!   sequence, top-p 0.95, temperature 1.0, stop tokens cleared (EOS ignored), at batch 1 and 16
//!   (16 copies of the prompt, seeds 0..15); the time includes the prefill, as llama.cpp's side.
//!   `decode-only` subtracts the median prefill of the same batch.
//! - `step`: one decoding step cut into its stages (transformer layers, LM head, sampling), each
//!   the mean over 128 steps after the prompt, in milliseconds, at batch 1 and 16.
//! - `lora` (not part of `all`): LoRA training tokens/s, as `lm train --init MODEL --lora-rank 16`
//!   steps: rank 16, alpha 16, dropout 0.05 on q_proj and v_proj (PEFT's default targets), batch
//!   8 × 256 random ids (rows of 257: inputs and shifted targets), forward, cross-entropy over the
//!   whole vocabulary, backward, clipping at 1.0, AdamW on the adapters; the mean of `SPEED_STEPS`
//!   (default 3) steps after one warm-up step, with the time of forward + loss, backward and
//!   clipping + optimizer apart, then one more forward cut into layers, LM head and cross-entropy,
//!   and the fused attention op alone at one layer's shape (`SPEED_STEPS=0`: those two alone).
//!   The steps' loss is `lm::train::batch_loss` (the output layer fused with the loss), or with
//!   `SPEED_LOSS=materialized` the batch's logits first (`batch_loss_materialized`); the peak
//!   resident memory of those steps is printed after them.
//!   PyTorch + PEFT reference: `scripts/pytorch_speed/speed.py gemma-lora`.
//!
//! `SPEED_FTZ=1` sets the x86 flush-to-zero and denormals-are-zero bits (MXCSR) on every thread
//! first: a check that no subnormals are left on the hot path. Softmax over masked rows once left
//! subnormal probabilities, on which Intel CPUs take a microcode assist per FMA (the attention op
//! ran ~20× slower; BENCHMARKS.md, 2026-12-03); `nn::fused::exp_f32` now returns exactly 0 there.
//!
//! Threads: rayon's default (one per core).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use clap::{Parser, ValueEnum};
use lm::{Decoder, DecoderGenerator, SamplingConfig};
use nn::Mode;
use rand::SeedableRng;

/// The prompt (written for this benchmark; no real patient).
pub const PROMPT: &str = "Paciente varón de 67 años que acude al servicio de urgencias del Hospital General por dolor \
torácico opresivo de dos horas de evolución, irradiado al brazo izquierdo y acompañado de sudoración profusa. \
Antecedentes personales: hipertensión arterial en tratamiento con enalapril, diabetes mellitus tipo 2 y \
dislipemia. Exfumador desde hace diez años. En la exploración física presenta tensión arterial de 150/90 mmHg, \
frecuencia cardiaca de 98 latidos por minuto y saturación de oxígeno del 95% con aire ambiente.";

const PROMPT_LEN: usize = 64;
const NEW: usize = 128;

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum What {
    /// prefill, generate and step.
    All,
    Generate,
    Prefill,
    Step,
    /// LoRA training steps (not part of `all`).
    Lora,
}

#[derive(Parser)]
#[command(about = "Prefill, generation, decoding-step and LoRA training speed of a GGUF checkpoint")]
struct Cli {
    #[arg(value_enum, default_value = "all")]
    what: What,
    /// A GGUF file or a model directory (default: the cached gemma-3-270m, fetched if missing).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Batch sizes to measure (llama.cpp's side runs 1 and 16).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    batches: Vec<usize>,
    /// Decoding weights (`lm generate --precision`): f32 or bf16.
    #[arg(long, default_value = "f32")]
    precision: lm::Precision,
    /// New tokens per sequence for `generate` and `step` (llama.cpp's side: 128); long documents
    /// (MEDDOCAN: about 800 tokens) pass Gemma's 512-token sliding window.
    #[arg(long, default_value_t = NEW)]
    new: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // SPEED_FTZ=1: flush denormals to zero (MXCSR FTZ + DAZ) on this thread and every rayon
    // thread: an experiment, see BENCHMARKS.md (2026-12-03): softmax leaves masked probabilities
    // as denormals, which Intel FMA units take microcode assists on.
    if std::env::var("SPEED_FTZ").as_deref() == Ok("1") {
        flush_denormals();
        rayon::broadcast(|_| flush_denormals());
        println!("ours: denormals flushed to zero (SPEED_FTZ=1)");
    }
    let path = match cli.model {
        Some(p) => p,
        None => models::ensure("gemma-3-270m")?.join("model.gguf"),
    };
    let what = cli.what;
    if what == What::Lora {
        return lora(&path);
    }
    let t = Instant::now();
    let model = Decoder::load(&path, &Device::Cpu)?;
    let tok = lm::tokenizer::load_from_dir(&path)?;
    let boundaries = lm::train::boundaries_of(&model.config, &tok)?;
    println!(
        "ours: {} ({} parameters, f32) loaded in {:.1} s, {} threads",
        path.display(),
        model.params.num_params(),
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    let mut g = DecoderGenerator::new(model, tok, boundaries)?;
    g.set_precision(cli.precision)?;
    println!("ours: decoding weights {:?} (runs as {:?})", cli.precision, cli.precision.effective());
    g.stop.clear();
    let mut ids = g.prompt_ids(PROMPT)?;
    anyhow::ensure!(ids.len() >= PROMPT_LEN, "the prompt has only {} tokens", ids.len());
    ids.truncate(PROMPT_LEN);
    let sum: u64 = ids.iter().enumerate().map(|(i, &x)| (i as u64 + 1) * x as u64).sum();
    println!("ours: prompt {} ids, first {:?}, checksum {sum}", ids.len(), &ids[..4]);

    let batches = cli.batches.clone();
    let mut prefill = vec![0f64; batches.len()];
    if matches!(what, What::All | What::Prefill | What::Generate) {
        for (k, &b) in batches.iter().enumerate() {
            let secs = prefill_secs(&g.model, &ids, b, cli.new)?;
            prefill[k] = secs;
            println!("ours prefill: batch {b}: {} prompt tokens in {:.3} s = {:.0} prompt tokens/s", b * PROMPT_LEN, secs, (b * PROMPT_LEN) as f64 / secs);
        }
    }
    if matches!(what, What::All | What::Generate) {
        let sampling = SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.95 };
        for (k, &b) in batches.iter().enumerate() {
            let seqs: Vec<(&[u32], u64)> = (0..b).map(|i| (ids.as_slice(), i as u64)).collect();
            g.generate_ids(&seqs, 8, &sampling)?;
            let t0 = Instant::now();
            let out = g.generate_ids(&seqs, cli.new, &sampling)?;
            let secs = t0.elapsed().as_secs_f64();
            let n: usize = out.iter().map(|o| o.len()).sum();
            anyhow::ensure!(n == b * cli.new, "{n} new tokens, expected {}", b * cli.new);
            println!(
                "ours generate: batch {b}: {n} new tokens in {secs:.2} s = {:.1} new tokens/s (decode-only {:.1})",
                n as f64 / secs,
                n as f64 / (secs - prefill[k])
            );
        }
    }
    if matches!(what, What::All | What::Step) {
        for &b in &batches {
            step(&g.model, &ids, b, cli.new)?;
        }
    }
    Ok(())
}

/// Median seconds of a forward of `b` copies of the prompt with a fresh cache, plus the LM head
/// on the last position (what generation's prefill does).
fn prefill_secs(model: &Decoder, ids: &[u32], b: usize, new: usize) -> anyhow::Result<f64> {
    let t = ids.len();
    let dev = Device::Cpu;
    let flat: Vec<u32> = (0..b).flat_map(|_| ids.iter().copied()).collect();
    let x = Tensor::from_vec(flat, (b, t), &dev)?;
    let pos = Tensor::arange(0u32, t as u32, &dev)?.unsqueeze(0)?.repeat((b, 1))?;
    let bias = lm::layers::causal_bias(&vec![0; b], 0, t, &dev, model.params.dtype())?;
    let mut times = Vec::new();
    for rep in 0..6 {
        let mut cache = model.new_cache(b, t + new)?;
        let t0 = Instant::now();
        let h = model.forward(&x, &pos, Some(&bias), Some(&mut cache), &mut Mode::Eval)?;
        let logits = model.logits(&h.narrow(1, t - 1, 1)?.squeeze(1)?)?;
        let _ = logits.to_vec2::<f32>()?;
        if rep > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(times[times.len() / 2])
}

/// One decoding step at batch `b` cut into its stages, each the mean over `new` steps (ms).
fn step(model: &Decoder, ids: &[u32], b: usize, new: usize) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let t0 = ids.len();
    let flat: Vec<u32> = (0..b).flat_map(|_| ids.iter().copied()).collect();
    let pos = Tensor::arange(0u32, t0 as u32, &dev)?.unsqueeze(0)?.repeat((b, 1))?;
    let bias = lm::layers::causal_bias(&vec![0; b], 0, t0, &dev, model.params.dtype())?;
    let mut cache = model.new_cache(b, t0 + new)?;
    let mut mode = Mode::Eval;
    let h = model.forward(&Tensor::from_vec(flat, (b, t0), &dev)?, &pos, Some(&bias), Some(&mut cache), &mut mode)?;
    let mut logits = model.logits(&h.narrow(1, t0 - 1, 1)?.squeeze(1)?)?;
    let sampling = SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.95 };
    let mut rngs: Vec<rand_chacha::ChaCha8Rng> = (0..b as u64).map(rand_chacha::ChaCha8Rng::seed_from_u64).collect();
    let mut spent = [0f64; 3];
    for s in 0..new {
        let t = Instant::now();
        let l: Vec<Vec<f32>> = logits.to_vec2()?;
        // One thread per row, as generate_ids samples rows in parallel.
        let toks: Vec<u32> = {
            use rayon::prelude::*;
            l.par_iter().zip(rngs.par_iter_mut()).map(|(l, r)| lm::sampling::sample(l, &sampling, lm::sampling::Walk::IdOrder, r) as u32).collect()
        };
        let t_sample = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let past = (t0 + s) as u32;
        let h = model.forward(&Tensor::from_vec(toks, (b, 1), &dev)?, &Tensor::from_vec(vec![past; b], (b, 1), &dev)?, None, Some(&mut cache), &mut mode)?;
        let t_layers = t.elapsed().as_secs_f64();
        let t = Instant::now();
        logits = model.logits(&h.squeeze(1)?)?;
        let t_head = t.elapsed().as_secs_f64();
        for (acc, x) in spent.iter_mut().zip([t_layers, t_head, t_sample]) {
            *acc += x * 1e3 / new as f64;
        }
    }
    let [layers, head, sample] = spent;
    let total = layers + head + sample;
    println!(
        "ours step: batch {b} (ms): layers {layers:.2}, LM head {head:.2}, logits copy + sampling {sample:.2}, total {total:.2} = {:.1} new tokens/s",
        b as f64 * 1e3 / total
    );
    Ok(())
}

/// LoRA training steps (see the module doc): tokens/s and the split of a step.
fn lora(path: &std::path::Path) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let t = Instant::now();
    let mut model = Decoder::load(path, &dev)?;
    let cfg = lm::LoraConfig { rank: 16, alpha: 16.0, dropout: 0.05, target_modules: vec!["q_proj".into(), "v_proj".into()] };
    let adapters = model.add_lora(&cfg, 0)?;
    let vars = adapters.vars();
    println!(
        "ours lora: {} loaded in {:.1} s; {} trainable of {} parameters; {} threads",
        path.display(),
        t.elapsed().as_secs_f64(),
        adapters.num_params(),
        model.params.num_params() + adapters.num_params(),
        rayon::current_num_threads()
    );
    let mut opt = nn::AdamW::new(vars.clone(), nn::AdamWConfig { lr: 1e-4, ..Default::default() }, |_| true)?;
    let (b, t) = (8, 256);
    let vocab = model.config.vocab_size() as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let rows: Vec<Vec<u32>> = (0..b).map(|_| (0..=t).map(|_| rand::Rng::random_range(&mut rng, 0..vocab)).collect()).collect();
    let refs: Vec<&Vec<u32>> = rows.iter().collect();
    let steps: usize = std::env::var("SPEED_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let materialized = std::env::var("SPEED_LOSS").is_ok_and(|v| v == "materialized");
    let mut spent = [0f64; 3];
    // SPEED_STEPS=0: only the split forward below (for profiling it).
    for s in 0..=steps {
        if steps == 0 {
            break;
        }
        let t0 = Instant::now();
        let mut drop_rng = nn::Rng::seed_from_u64(s as u64);
        let loss = if materialized {
            lm::train::batch_loss_materialized(&model, &refs, &dev, &mut Mode::Train(&mut drop_rng))?
        } else {
            lm::train::batch_loss(&model, &refs, &dev, &mut Mode::Train(&mut drop_rng))?
        };
        let loss_value = loss.to_scalar::<f32>()?;
        let t_fwd = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let grads = lm::train::trainable_grads(loss.backward()?, &vars);
        let t_bwd = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        let (_, scale) = nn::clip_scale(&grads, &vars, 1.0)?;
        opt.step(&grads, 1e-4, scale)?;
        let t_opt = t2.elapsed().as_secs_f64();
        println!("ours lora: step {s}: loss {loss_value:.3}, {:.2} s", t0.elapsed().as_secs_f64());
        if s > 0 {
            for (acc, x) in spent.iter_mut().zip([t_fwd, t_bwd, t_opt]) {
                *acc += x / steps as f64;
            }
        }
    }
    // Peak resident memory of the steps above (Linux): the loss path decides it. Read before the
    // split forward below, which materialises logits either way.
    if let Some(peak) = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l[6..].trim().to_string())) {
        println!("ours lora: peak resident memory {peak} ({})", if materialized { "logits materialised" } else { "output layer fused with the loss" });
    }
    // The forward pass of one more step cut into its stages (gradients tracked, as in training).
    let inputs: Vec<u32> = rows.iter().flat_map(|r| r[..t].iter().copied()).collect();
    let targets: Vec<u32> = rows.iter().flat_map(|r| r[1..].iter().copied()).collect();
    let inputs = Tensor::from_vec(inputs, (b, t), &dev)?;
    let targets = Tensor::from_vec(targets, b * t, &dev)?;
    let positions = Tensor::arange(0u32, t as u32, &dev)?.unsqueeze(0)?;
    let bias = lm::layers::causal_bias(&[0], 0, t, &dev, model.params.dtype())?;
    let mut drop_rng = nn::Rng::seed_from_u64(99);
    let mut mode = Mode::Train(&mut drop_rng);
    let t0 = Instant::now();
    let h = model.forward(&inputs, &positions, Some(&bias), None, &mut mode)?;
    let t_layers = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let logits = model.logits(&h)?;
    let t_head = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let loss = lm::loss::cross_entropy(&logits.reshape((b * t, ()))?, &targets)?;
    let _ = loss.to_scalar::<f32>()?;
    let t_loss = t0.elapsed().as_secs_f64();
    println!("ours lora forward: layers {t_layers:.2} s, LM head {t_head:.2} s, cross-entropy {t_loss:.2} s");
    // The fused attention op alone at this shape (one layer: 4 query heads, 1 key/value head of
    // 256, 256 positions, causal bias), forward and backward, against its GEMM work.
    let q = Tensor::randn(0f32, 1.0, (b, 4, t, 256), &dev)?;
    let kv = Tensor::randn(0f32, 1.0, (b, 1, t, 256), &dev)?;
    let (q, k, v) = (candle_core::Var::from_tensor(&q)?, candle_core::Var::from_tensor(&kv)?, candle_core::Var::from_tensor(&kv)?);
    let t0 = Instant::now();
    let a = nn::attention::attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), Some(&bias), 1.0 / 16.0, 0.0, &mut Mode::Eval)?;
    let t_attn = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let _ = a.sum_all()?.backward()?;
    let t_attn_bwd = t0.elapsed().as_secs_f64();
    let flops = 2.0 * 2.0 * (b * 4 * t * t * 256) as f64;
    println!(
        "ours attention (one layer, batch {b}, 4 heads x 256, {t} positions): forward {:.0} ms ({:.1} GFLOP/s), backward {:.0} ms; x 18 layers: {:.2} s + {:.2} s",
        t_attn * 1e3,
        flops / t_attn / 1e9,
        t_attn_bwd * 1e3,
        18.0 * t_attn,
        18.0 * t_attn_bwd
    );
    let [fwd, bwd, optim] = spent;
    let mean = fwd + bwd + optim;
    if steps == 0 {
        return Ok(());
    }
    println!(
        "ours lora train: batch {b} x {t}: {mean:.2} s/step (forward + loss {fwd:.2}, backward {bwd:.2}, clip + AdamW {optim:.3}), {:.0} tokens/s",
        (b * t) as f64 / mean
    );
    Ok(())
}

/// Sets MXCSR's flush-to-zero and denormals-are-zero bits on the calling thread.
#[allow(deprecated)]
fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
}
