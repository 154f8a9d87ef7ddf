//! AdamW (decoupled weight decay, PyTorch semantics), a warmup + linear-decay schedule, and
//! gradient clipping by global norm.
//!
//! candle-nn has an `AdamW`, but its moment estimates are private, so a killed run could not
//! resume with the same optimizer state. This one exposes and saves its state.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

/// AdamW hyper-parameters (PyTorch defaults except the learning rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    decay: bool,
    /// This variable's learning rate as a multiple of the step's.
    lr_scale: f64,
}

/// AdamW over a list of named variables.
pub struct AdamW {
    slots: Vec<Slot>,
    pub config: AdamWConfig,
    /// Number of steps taken (bias correction uses it).
    pub step: u64,
}

/// HF convention: no weight decay on biases and LayerNorm weights.
pub fn default_decay(name: &str) -> bool {
    !(name.ends_with(".bias") || name.ends_with("bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
}

impl AdamW {
    /// `decay(name)` says whether a variable gets weight decay (see [`default_decay`]).
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig, decay: impl Fn(&str) -> bool) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let m = var.zeros_like()?;
                let v = var.zeros_like()?;
                Ok(Slot { decay: decay(&name), name, var, m, v, lr_scale: 1.0 })
            })
            .collect::<Result<_>>()?;
        Ok(AdamW { slots, config, step: 0 })
    }

    /// Gives each variable the learning rate `scale(name)` × the step's (1 until set), e.g. a
    /// new task head that must move faster than the pre-trained body it sits on.
    pub fn set_lr_scale(&mut self, scale: impl Fn(&str) -> f64) {
        for s in &mut self.slots {
            s.lr_scale = scale(&s.name);
        }
    }

    /// One update with learning rate `lr`; every gradient is multiplied by `grad_scale` first
    /// (the clipping factor of [`clip_scale`]). Variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else { continue };
            // Detach: a gradient tensor can still reference the whole forward graph, and folding it
            // into the running moments would keep every step's graph alive (0.7–1.4 GB a step).
            let g = g.detach();
            let lr = lr * s.lr_scale;
            let decay = if s.decay { 1.0 - lr * c.weight_decay } else { 1.0 };
            let g = g.contiguous()?;
            if crate::fused::inplace_usable(&[s.var.as_tensor(), &g, &s.m, &s.v]) && s.m.dims() == g.dims() {
                // Three passes over memory, in place, instead of a dozen tensor ops.
                s.m.inplace_op2(&g, &crate::fused::MomentUpdate { beta: c.beta1, grad_scale, second: false })?;
                s.v.inplace_op2(&g, &crate::fused::MomentUpdate { beta: c.beta2, grad_scale, second: true })?;
                let update = crate::fused::ParamUpdate { lr, decay, bc1, bc2, eps: c.eps };
                s.var.as_tensor().inplace_op3(&s.m, &s.v, &update)?;
                continue;
            }
            let g = if grad_scale != 1.0 { (g * grad_scale)? } else { g };
            s.m = ((&s.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            s.v = ((&s.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&s.m / bc1)? / ((&s.v / bc2)?.sqrt()? + c.eps)?)?;
            let theta = ((s.var.as_tensor() * decay)? - (update * lr)?)?;
            s.var.set(&theta.detach())?;
            s.m = s.m.detach();
            s.v = s.v.detach();
        }
        Ok(())
    }

    /// Saves the moments as `m.NAME` / `v.NAME` in a safetensors file (the step count goes in the
    /// caller's state JSON).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut map = std::collections::HashMap::new();
        for s in &self.slots {
            map.insert(format!("m.{}", s.name), s.m.clone());
            map.insert(format!("v.{}", s.name), s.v.clone());
        }
        Ok(fsutil::atomic_write_with(path, |tmp| candle_core::safetensors::save(&map, tmp).map_err(std::io::Error::other))?)
    }

    /// Loads moments written by [`AdamW::save`]; `step` must be restored by the caller.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let dev = self.slots.first().map(|s| s.var.device().clone()).unwrap_or(candle_core::Device::Cpu);
        let mut map = candle_core::safetensors::load(path, &dev).with_context(|| format!("reading {}", path.display()))?;
        for s in &mut self.slots {
            let m = map.remove(&format!("m.{}", s.name)).with_context(|| format!("optimizer state lacks m.{}", s.name))?;
            let v = map.remove(&format!("v.{}", s.name)).with_context(|| format!("optimizer state lacks v.{}", s.name))?;
            s.m = m.to_dtype(s.var.dtype())?;
            s.v = v.to_dtype(s.var.dtype())?;
        }
        Ok(())
    }
}

/// Linear warmup from 0 to `peak` over `warmup` steps, then linear decay to 0 at `total`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearSchedule {
    pub peak: f64,
    pub warmup: u64,
    pub total: u64,
}

impl LinearSchedule {
    /// Learning rate for the update numbered `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        let s = step as f64 + 1.0;
        if step < self.warmup {
            self.peak * s / self.warmup as f64
        } else {
            let rest = (self.total.saturating_sub(self.warmup)).max(1) as f64;
            self.peak * ((self.total as f64 - step as f64) / rest).clamp(0.0, 1.0)
        }
    }
}

/// Global L2 norm of the gradients of `vars`, and the factor (≤ 1) that brings it to `max_norm`
/// (PyTorch's `clip_grad_norm_`). Apply the factor through [`AdamW::step`]'s `grad_scale`.
pub fn clip_scale(grads: &GradStore, vars: &[(String, Var)], max_norm: f64) -> Result<(f64, f64)> {
    let mut sq = 0.0f64;
    for (_, v) in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        }
    }
    let norm = sq.sqrt();
    let scale = if max_norm > 0.0 && norm > max_norm { max_norm / (norm + 1e-6) } else { 1.0 };
    Ok((norm, scale))
}
