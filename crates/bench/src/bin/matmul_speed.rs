//! Measures f32 GEMM throughput of candle on this machine for the shapes a transformer step uses,
//! forward (`x Wᵀ`) and the two backward products, plus the batched attention products.
//! BENCHMARKS.md › LM speed (the GFLOP/s of the training shapes):
//!
//!     cargo run --release -p bench --bin matmul_speed [decode]
//!
//! `decode`: only the decoding shapes (16 rows), with `nn::fused::linear` (the path the models
//! take) beside candle's matmul, and the weight bytes each streams per second.

use std::time::Instant;

use candle_core::{Device, Tensor};
use clap::Parser;

#[derive(Parser)]
#[command(about = "f32 GEMM throughput of candle for a transformer step's shapes")]
struct Cli {
    /// `decode`: only the decoding shapes (16 rows), fused linear beside candle's matmul.
    #[arg(value_parser = ["decode"])]
    mode: Option<String>,
}

fn bench(name: &str, a: &Tensor, b: &Tensor, batch: usize, m: usize, k: usize, n: usize) -> anyhow::Result<()> {
    let _ = a.matmul(b)?;
    let reps = 5;
    let t0 = Instant::now();
    for _ in 0..reps {
        let _ = a.matmul(b)?;
    }
    let s = t0.elapsed().as_secs_f64() / reps as f64;
    let gf = 2.0 * (batch * m * k * n) as f64 / s / 1e9;
    println!("{name:<44} {:>8.2} ms {gf:>7.1} GFLOP/s", s * 1e3);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let d = Device::Cpu;
    println!("{} threads", rayon::current_num_threads());
    let r = |s: &[usize]| Tensor::randn(0f32, 1.0, s, &d);
    if cli.mode.as_deref() == Some("decode") {
        for (inp, out) in [(384usize, 1152usize), (384, 1536), (1536, 384), (384, 32000)] {
            let x = r(&[16, inp])?;
            let w = r(&[out, inp])?;
            let b = r(&[out])?;
            bench(&format!("dec x[16,{inp}] Wt[{inp},{out}] (matmul)"), &x, &w.t()?, 1, 16, inp, out)?;
            // The fastest of many runs: this VM's neighbours slow single runs by up to 2×.
            let mut s = f64::INFINITY;
            for _ in 0..30 {
                let t0 = Instant::now();
                let _ = nn::fused::linear(&x, &w, Some(&b), false)?;
                s = s.min(t0.elapsed().as_secs_f64());
            }
            let gbs = (inp * out * 4) as f64 / s / 1e9;
            println!("{:<44} {:>8.2} ms {:>7.1} GFLOP/s {gbs:>5.1} GB/s of weight", format!("dec fused linear x[16,{inp}] W[{out},{inp}]"), s * 1e3, 2.0 * (16 * inp * out) as f64 / s / 1e9);
        }
        // Decoding attention: 16 sequences × 6 heads, one query each, against 144 cached keys
        // (views of a 272-long cache), over six layers' caches in turn so that they come from
        // memory, as in a decoding step.
        let (b, h, d, max_len, ctx) = (16usize, 6usize, 64usize, 272usize, 144usize);
        let caches: Vec<(Tensor, Tensor)> = (0..6).map(|_| Ok((r(&[b, h, max_len, d])?, r(&[b, h, max_len, d])?))).collect::<anyhow::Result<_>>()?;
        let q = r(&[b, h, 1, d])?;
        let mut s = f64::INFINITY;
        for _ in 0..10 {
            let t0 = Instant::now();
            for (k, v) in &caches {
                let _ = nn::attention::attention(&q, &k.narrow(2, 0, ctx)?, &v.narrow(2, 0, ctx)?, None, 0.125, 0.0, &mut nn::Mode::Eval)?;
            }
            s = s.min(t0.elapsed().as_secs_f64() / caches.len() as f64);
        }
        let gbs = (2 * b * h * ctx * d * 4) as f64 / s / 1e9;
        println!("{:<44} {:>8.3} ms {gbs:>5.1} GB/s of keys and values", format!("dec attention [{b},{h},1,{d}] × {ctx} keys"), s * 1e3);
        return Ok(());
    }
    for (rows, inp, out) in [(2048usize, 384usize, 1152usize), (2048, 384, 1536), (2048, 1536, 384), (2048, 384, 32000), (1024, 1024, 1024)] {
        let x = r(&[rows, inp])?;
        let w = r(&[out, inp])?; // nn.Linear layout
        let wc = r(&[inp, out])?; // Conv1D layout
        let gy = r(&[rows, out])?;
        bench(&format!("fwd x[{rows},{inp}] Wt[{inp},{out}] (view)"), &x, &w.t()?, 1, rows, inp, out)?;
        bench(&format!("fwd x[{rows},{inp}] W[{inp},{out}]"), &x, &wc, 1, rows, inp, out)?;
        bench(&format!("dx  gy[{rows},{out}] W[{out},{inp}]"), &gy, &w, 1, rows, out, inp)?;
        bench(&format!("dW  gyT[{out},{rows}] x[{rows},{inp}]"), &gy.t()?, &x, 1, out, rows, inp)?;
        bench(&format!("dWc xT[{inp},{rows}] gy[{rows},{out}]"), &x.t()?, &gy, 1, inp, rows, out)?;
    }
    let (bh, t, hd) = (48usize, 256usize, 64usize);
    let q = r(&[bh, t, hd])?;
    let k = r(&[bh, t, hd])?;
    let p = r(&[bh, t, t])?;
    bench("attn q kT [48,256,64]x[48,64,256]", &q, &k.t()?, bh, t, hd, t)?;
    bench("attn p v  [48,256,256]x[48,256,64]", &p, &k, bh, t, t, hd)?;
    bench("attn pT q [48,256,256]T x[48,256,64]", &p.t()?, &q, bh, t, t, hd)?;
    // Decoding: a batch of 16 new tokens against the weights (the weight as the right operand,
    // as a layer computes it, and as the left one).
    for (inp, out) in [(384usize, 1152usize), (384, 1536), (1536, 384), (384, 32000)] {
        let x = r(&[16, inp])?;
        let w = r(&[out, inp])?;
        bench(&format!("dec x[16,{inp}] Wt[{inp},{out}] (view)"), &x, &w.t()?, 1, 16, inp, out)?;
        bench(&format!("dec W[{out},{inp}] xT[{inp},16] (view)"), &w, &x.t()?, 1, out, inp, 16)?;
        let xt = x.t()?.contiguous()?;
        bench(&format!("dec W[{out},{inp}] xT[{inp},16] (contig)"), &w, &xt, 1, out, inp, 16)?;
        // Conv1D layout: the weight stored [in, out].
        let m = r(&[inp, out])?;
        bench(&format!("dec x[16,{inp}] M[{inp},{out}] (conv1d)"), &x, &m, 1, 16, inp, out)?;
        bench(&format!("dec MT[{out},{inp}] (view) xT (conv1d)"), &m.t()?, &x.t()?, 1, out, inp, 16)?;
    }
    Ok(())
}
