//! Measures one text's per-token log-probabilities (mean NLL, perplexity, worst positions) and a
//! greedy continuation under a model directory or GGUF file: the quick look at whether a
//! checkpoint loads right (no BENCHMARKS.md row; the parity tests in `lm/tests` are the record).
//!
//!     cargo run --release -p bench --bin lm_score -- MODEL "text to score" [--new-tokens 16]
use std::path::PathBuf;

use anyhow::Result;
use candle_core::{Tensor, D};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Per-token log-probabilities and a greedy continuation of a text under a model")]
struct Cli {
    /// A model directory or GGUF file.
    model: PathBuf,
    /// The text to score.
    text: String,
    /// Greedy new tokens after the text.
    #[arg(long, default_value_t = 16)]
    new_tokens: usize,
    /// A token id put first, before the text's ids (and before Gemma's BOS).
    #[arg(long, env = "PREPEND")]
    prepend: Option<u32>,
    /// A token id put after the text's ids.
    #[arg(long, env = "APPEND")]
    append: Option<u32>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let (path, text) = (cli.model.as_path(), &cli.text);
    let new = cli.new_tokens;
    let dev = nn::device();
    let t0 = std::time::Instant::now();
    let model = lm::Decoder::load(path, &dev)?;
    let tok = lm::tokenizer::load_from_dir(path)?;
    eprintln!("loaded in {:.1}s", t0.elapsed().as_secs_f64());
    let mut ids = tok.encode(text)?;
    if let Some(b) = model.config.bos_id().filter(|_| matches!(model.config, lm::ModelConfig::Gemma3(_))) {
        ids.insert(0, b);
    }
    if let Some(pre) = cli.prepend {
        ids.insert(0, pre);
    }
    if let Some(post) = cli.append {
        ids.push(post);
    }
    println!("ids {:?}", ids);
    let mut mode = nn::Mode::Eval;
    let x = Tensor::new(ids.as_slice(), &dev)?.unsqueeze(0)?;
    let logits = model.forward_logits(&x, &mut mode)?.squeeze(0)?;
    let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)?.to_vec2::<f32>()?;
    let nll: Vec<f64> = (1..ids.len()).map(|i| -(lp[i - 1][ids[i] as usize] as f64)).collect();
    let mean = nll.iter().sum::<f64>() / nll.len() as f64;
    println!("mean nll {mean:.4}, perplexity {:.2}", mean.exp());
    let mut worst: Vec<(usize, f64)> = nll.iter().copied().enumerate().collect();
    worst.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("largest nll (target position, nll): {:?}", &worst[..worst.len().min(5)]);
    let mut seq = ids.clone();
    for _ in 0..new {
        let x = Tensor::new(seq.as_slice(), &dev)?.unsqueeze(0)?;
        let logits = model.forward_logits(&x, &mut mode)?.squeeze(0)?;
        let last = logits.get(seq.len() - 1)?.argmax(0)?.to_scalar::<u32>()?;
        seq.push(last);
    }
    println!("greedy {:?}", &seq[ids.len()..]);
    println!("text {:?}", tok.decode(&seq[ids.len()..])?);
    Ok(())
}
