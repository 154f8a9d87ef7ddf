//! Measures training and prediction throughput (tokens/s) of a BERT encoder with a token
//! classification head on random ids (no corpus needed), beside PyTorch's
//! `scripts/pytorch_speed/speed.py encoder` (alternated by `scripts/pytorch_speed/compare.sh`:
//! BENCHMARKS.md, current results, "encoder training / prediction tokens/s vs PyTorch (MiniLM-L6
//! shape)"). Alone, that shape (the defaults):
//!
//! ```text
//! cargo run --release -p bench --bin encoder_speed -- --layers 6 --hidden 384 --heads 12 --ffn 1536 \
//!     --vocab 30522 --batch 16 --len 128 --steps 10
//! ```
//! Prediction only, on a pretrained checkpoint (multilingual-E5-small), beside `speed.py e5`:
//! `encoder_speed --predict-only --skip-eval-path --model ~/.cache/synthdeid/models/multilingual-e5-small`;
//! all three side by side: `scripts/pytorch_speed/compare.sh encoder`.
//! Training step = forward, token-classification loss, backward, clipping, AdamW; tokens/s counts
//! `batch × len` per step, as the PyTorch reference does.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor, D};
use clap::Parser;
use nn::{AdamW, AdamWConfig, Encoder, EncoderConfig, Linear, Mode, Params};
use rand::{Rng, SeedableRng};

#[derive(Parser)]
#[command(about = "Training and prediction tokens/s of a BERT encoder on random ids")]
struct Cli {
    #[arg(long, default_value_t = 6)]
    layers: usize,
    #[arg(long, default_value_t = 384)]
    hidden: usize,
    #[arg(long, default_value_t = 12)]
    heads: usize,
    #[arg(long, default_value_t = 1536)]
    ffn: usize,
    #[arg(long, default_value_t = 30522)]
    vocab: usize,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 128)]
    len: usize,
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Time prediction only (e.g. to profile it).
    #[arg(long)]
    predict_only: bool,
    /// A pretrained HF encoder directory (`config.json`, `model.safetensors`) instead of random
    /// weights of the shape above, e.g. `models fetch multilingual-e5-small`'s.
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// Skip timing prediction through the training forward (eval mode).
    #[arg(long)]
    skip_eval_path: bool,
    /// The inference path's weight format: f32 or bf16 (AVX-512 BF16).
    #[arg(long, default_value = "f32")]
    precision: nn::Precision,
}

fn main() -> Result<()> {
    let a = Cli::parse();
    let mut a = a;
    let c = match &a.model {
        Some(dir) => {
            let c = EncoderConfig::from_file(&dir.join("config.json"))?;
            (a.layers, a.hidden, a.heads, a.ffn, a.vocab) = (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size, c.vocab_size);
            c
        }
        None => EncoderConfig::bert(a.vocab, a.hidden, a.layers, a.heads, a.ffn),
    };
    let params = Params::new(Device::Cpu, DType::F32, 0);
    let enc = Encoder::new(&params.pp(c.hf_prefix()), &c)?;
    if let Some(dir) = &a.model {
        let prefix = c.hf_prefix();
        let report = params.load(&dir.join("model.safetensors"), |n| nn::hf_rename(n, prefix))?;
        anyhow::ensure!(report.missing.is_empty(), "{}: missing {:?}", dir.display(), report.missing);
    }
    let head = Linear::new(&params.pp("classifier"), a.hidden, 45, true, 0.02)?;
    let mut rng = nn::Rng::seed_from_u64(0);
    let ids: Vec<u32> = (0..a.batch * a.len).map(|_| rng.random_range(5..a.vocab as u32)).collect();
    let tags: Vec<u32> = (0..a.batch * a.len).map(|_| rng.random_range(0..45)).collect();
    let ids = Tensor::from_vec(ids, (a.batch, a.len), &Device::Cpu)?;
    let tags = Tensor::from_vec(tags, a.batch * a.len, &Device::Cpu)?;
    let mask = ids.ones_like()?;
    let vars = params.vars();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig::default(), nn::optim::default_decay)?;
    let tokens = (a.batch * a.len) as f64;

    let mut train_secs = 0.0;
    for i in 0..if a.predict_only { 0 } else { a.warmup + a.steps } {
        let t = Instant::now();
        let h = enc.forward(&ids, &mask, None, &mut Mode::Train(&mut rng))?;
        let logits = head.forward(&h)?.reshape((a.batch * a.len, 45))?;
        let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let loss = lp.gather(&tags.unsqueeze(1)?, 1)?.neg()?.mean_all()?;
        let grads = loss.backward()?;
        let (_, scale) = nn::clip_scale(&grads, &vars, 1.0)?;
        opt.step(&grads, 1e-4, scale)?;
        let dt = t.elapsed().as_secs_f64();
        if i >= a.warmup {
            train_secs += dt;
        }
    }
    // Prediction through the training forward in eval mode (the graph path)...
    let mut eval_secs = 0.0;
    for i in 0..if a.skip_eval_path { 0 } else { a.warmup + a.steps } {
        let t = Instant::now();
        let h = enc.forward(&ids, &mask, None, &mut Mode::Eval)?;
        let _ = head.forward(&h)?.argmax(D::Minus1)?.to_vec2::<u32>()?;
        if i >= a.warmup {
            eval_secs += t.elapsed().as_secs_f64();
        }
    }
    // ... and through the inference path (what `ner predict` runs): weights packed once, then
    // forward, head and argmax per step.
    let t = Instant::now();
    let fast = nn::InferenceEncoder::with_precision(&enc, a.precision)?;
    let fast_head = nn::infer::PackedLinear::new(&head)?;
    let pack_secs = t.elapsed().as_secs_f64();
    let rows: Vec<Vec<u32>> = ids.to_vec2()?;
    let seqs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
    let mut pred_secs = 0.0;
    let mut cpu0 = 0.0;
    for i in 0..a.warmup + a.steps {
        if i == a.warmup {
            cpu0 = cpu_seconds();
        }
        let t = Instant::now();
        let h = fast.forward(&seqs, None)?;
        let logits = fast_head.forward(&h, a.batch * a.len);
        let tags: Vec<usize> = logits.chunks(45).map(|r| (0..45).fold(0, |b, j| if r[j] > r[b] { j } else { b })).collect();
        std::hint::black_box(tags);
        if i >= a.warmup {
            pred_secs += t.elapsed().as_secs_f64();
        }
    }
    let pred_cpu = cpu_seconds() - cpu0;
    println!(
        "{} layers, hidden {}, {} heads, ffn {}, vocab {}, batch {}x{}, {:?}: train {:.0} tokens/s ({:.3} s/step), predict {:.0} tokens/s, {:.0} per CPU-second (training-path eval {:.0}; packing {:.3} s)",
        a.layers,
        a.hidden,
        a.heads,
        a.ffn,
        a.vocab,
        a.batch,
        a.len,
        a.precision.effective(),
        tokens * a.steps as f64 / train_secs,
        train_secs / a.steps as f64,
        tokens * a.steps as f64 / pred_secs,
        tokens * a.steps as f64 / pred_cpu,
        tokens * a.steps as f64 / eval_secs,
        pack_secs
    );
    Ok(())
}

/// CPU seconds this process has used (user + system, from `/proc/self/stat`, 100 ticks a second
/// on Linux; 0 elsewhere): on a loaded machine, work per CPU-second says what a core does when
/// it runs, which wall time mixes with how often it is given one.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
