//! LoRA adapters on disk in PEFT's format: `adapter_model.safetensors` (tensors named
//! `base_model.model.{module}.lora_A.weight` / `lora_B.weight`) and `adapter_config.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nn::Params;
use serde_json::json;

use crate::layers::LoraConfig;
use crate::models::{Decoder, ModelConfig};

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// Writes the adapters and a PEFT `adapter_config.json` naming the base model directory.
pub fn save_adapter(dir: &Path, adapters: &Params, cfg: &LoraConfig, model: &ModelConfig, base: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    adapters.save(&dir.join(ADAPTER_WEIGHTS))?;
    let targets = if cfg.target_modules.is_empty() { model.default_lora_targets() } else { cfg.target_modules.clone() };
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    let c = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base.to_string_lossy(),
        "r": cfg.rank,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": targets,
        "bias": "none",
        // GPT-2's Conv1D stores weights [in, out].
        "fan_in_fan_out": matches!(model, ModelConfig::Gpt2(_)),
        "inference_mode": true,
    });
    Ok(fsutil::atomic_write(&dir.join(ADAPTER_CONFIG), serde_json::to_string_pretty(&c)?.as_bytes())?)
}

/// Reads `adapter_config.json`: the LoRA settings and the base model directory.
pub fn read_adapter_config(dir: &Path) -> Result<(LoraConfig, PathBuf)> {
    let path = dir.join(ADAPTER_CONFIG);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)?;
    let cfg = LoraConfig {
        rank: v["r"].as_u64().context("adapter_config.json: no r")? as usize,
        alpha: v["lora_alpha"].as_f64().unwrap_or(8.0),
        dropout: v["lora_dropout"].as_f64().unwrap_or(0.0),
        target_modules: v["target_modules"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default(),
    };
    let base = PathBuf::from(v["base_model_name_or_path"].as_str().context("adapter_config.json: no base_model_name_or_path")?);
    let base = if base.is_relative() && dir.join(&base).exists() { dir.join(base) } else { base };
    Ok((cfg, base))
}

/// Loads the base model of an adapter directory, attaches the adapters and (with `merge`) folds
/// them into the base weights.
pub fn load_adapted(dir: &Path, device: &candle_core::Device, merge: bool) -> Result<(Decoder, Params)> {
    let (cfg, base) = read_adapter_config(dir)?;
    let mut model = Decoder::load(&base, device).with_context(|| format!("base model of {}", dir.display()))?;
    let adapters = model.add_lora(&cfg, 0)?;
    Decoder::load_adapter_weights(&adapters, &dir.join(ADAPTER_WEIGHTS))?;
    if merge {
        model.merge_lora()?;
    }
    Ok((model, adapters))
}
