//! Per-token log-probabilities and a greedy continuation under a model directory or GGUF file:
//! the quick look at whether a checkpoint loads right.
//!
//!     cargo run --release -p lm --example score -- MODEL "text to score" [new_tokens]
use anyhow::Result;
use candle_core::{Tensor, D};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (path, text) = (std::path::Path::new(&args[1]), &args[2]);
    let new: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(16);
    let dev = nn::device();
    let t0 = std::time::Instant::now();
    let model = lm::Decoder::load(path, &dev)?;
    let tok = lm::tokenizer::load_from_dir(path)?;
    eprintln!("loaded in {:.1}s", t0.elapsed().as_secs_f64());
    let mut ids = tok.encode(text)?;
    if let Some(b) = model.config.bos_id().filter(|_| matches!(model.config, lm::ModelConfig::Gemma3(_))) {
        ids.insert(0, b);
    }
    if let Ok(pre) = std::env::var("PREPEND") {
        ids.insert(0, pre.parse()?);
    }
    if let Ok(post) = std::env::var("APPEND") {
        ids.push(post.parse()?);
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
