//! Decoder-only transformers in Hugging Face layout, behind one [`Decoder`] type.

pub mod gemma3;
pub mod gpt2;
pub mod llama;

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use nn::infer::{PackedLinear, Precision};
use nn::{Mode, Params};
use serde::{Deserialize, Serialize};

pub use gemma3::{Gemma3, Gemma3Config};
pub use gpt2::{Gpt2, Gpt2Config};
pub use llama::{Llama, LlamaConfig};

use crate::layers::{KvCache, LoraConfig, Proj};

/// A model's `config.json`, by family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelConfig {
    Gpt2(Gpt2Config),
    Llama(LlamaConfig),
    Gemma3(Gemma3Config),
}

impl ModelConfig {
    /// Parses a `config.json` value, dispatching on `model_type`.
    pub fn from_value(v: serde_json::Value) -> Result<Self> {
        let ty = v.get("model_type").and_then(|t| t.as_str()).unwrap_or_default().to_string();
        Ok(match ty.as_str() {
            "gpt2" => ModelConfig::Gpt2(serde_json::from_value(v)?),
            "llama" | "mistral" | "qwen2" => ModelConfig::Llama(serde_json::from_value(v)?),
            "gemma3_text" => ModelConfig::Gemma3(serde_json::from_value(v)?),
            // A multimodal Gemma 3 config: the text model's settings are under `text_config`.
            "gemma3" => match v.get("text_config") {
                Some(t) if t.get("hidden_size").is_some() => {
                    let mut t = t.clone();
                    t["model_type"] = "gemma3_text".into();
                    ModelConfig::Gemma3(serde_json::from_value(t)?)
                }
                _ => ModelConfig::Gemma3(serde_json::from_value(v)?),
            },
            other => bail!("unsupported model_type {other:?} (supported: gpt2, llama, mistral, qwen2, gemma3_text)"),
        })
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&s).with_context(|| format!("parsing {}", path.display()))?;
        Self::from_value(v).with_context(|| format!("in {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(fsutil::atomic_write(path, serde_json::to_string_pretty(self)?.as_bytes())?)
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            ModelConfig::Gpt2(c) => c.vocab_size,
            ModelConfig::Llama(c) => c.vocab_size,
            ModelConfig::Gemma3(c) => c.vocab_size,
        }
    }

    pub fn max_positions(&self) -> usize {
        match self {
            ModelConfig::Gpt2(c) => c.n_positions,
            ModelConfig::Llama(c) => c.max_position_embeddings,
            ModelConfig::Gemma3(c) => c.max_position_embeddings,
        }
    }

    /// End-of-sequence ids (`eos_token_id` may be a number or a list in HF configs).
    pub fn eos_ids(&self) -> Vec<u32> {
        let v = match self {
            ModelConfig::Gpt2(c) => c.eos_token_id.as_ref(),
            ModelConfig::Llama(c) => c.eos_token_id.as_ref(),
            ModelConfig::Gemma3(c) => c.eos_token_id.as_ref(),
        };
        match v {
            Some(serde_json::Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_u64()).map(|n| n as u32).collect(),
            _ => Vec::new(),
        }
    }

    pub fn bos_id(&self) -> Option<u32> {
        match self {
            ModelConfig::Gpt2(c) => c.bos_token_id,
            ModelConfig::Llama(c) => c.bos_token_id,
            ModelConfig::Gemma3(c) => c.bos_token_id,
        }
    }

    pub fn set_special_tokens(&mut self, bos: u32, eos: u32) {
        let e = Some(serde_json::json!(eos));
        match self {
            ModelConfig::Gpt2(c) => (c.bos_token_id, c.eos_token_id) = (Some(bos), e),
            ModelConfig::Llama(c) => (c.bos_token_id, c.eos_token_id) = (Some(bos), e),
            ModelConfig::Gemma3(c) => (c.bos_token_id, c.eos_token_id) = (Some(bos), e),
        }
    }

    /// LoRA's default targets for the family (PEFT's defaults).
    pub fn default_lora_targets(&self) -> Vec<String> {
        match self {
            ModelConfig::Gpt2(_) => vec!["c_attn".into()],
            ModelConfig::Llama(_) | ModelConfig::Gemma3(_) => vec!["q_proj".into(), "v_proj".into()],
        }
    }

    /// Turns all dropout off or sets it (fine-tuning from HF configs keeps theirs).
    pub fn set_dropout(&mut self, p: f64) {
        match self {
            ModelConfig::Gpt2(c) => (c.resid_pdrop, c.embd_pdrop, c.attn_pdrop) = (p, p, p),
            ModelConfig::Llama(c) => c.attention_dropout = p,
            ModelConfig::Gemma3(c) => c.attention_dropout = p,
        }
    }
}

enum Arch {
    Gpt2(Gpt2),
    Llama(Llama),
    Gemma3(Gemma3),
}

/// A decoder-only LM: its config, its named parameters (HF names) and the network.
pub struct Decoder {
    pub config: ModelConfig,
    pub params: Params,
    arch: Arch,
    /// A tied output layer packed for decoding ([`Decoder::pack`]).
    packed_head: Option<Arc<PackedLinear>>,
}

impl Decoder {
    /// A freshly initialised model (seeded).
    pub fn new(config: &ModelConfig, device: &Device, seed: u64) -> Result<Self> {
        Self::with_params(config, Params::new(device.clone(), DType::F32, seed))
    }

    /// A model whose every parameter is about to be loaded (no random initialisation).
    pub fn for_loading(config: &ModelConfig, device: &Device) -> Result<Self> {
        Self::with_params(config, Params::for_loading(device.clone(), DType::F32))
    }

    fn with_params(config: &ModelConfig, params: Params) -> Result<Self> {
        let arch = match config {
            ModelConfig::Gpt2(c) => Arch::Gpt2(Gpt2::new(&params, c)?),
            ModelConfig::Llama(c) => Arch::Llama(Llama::new(&params, c)?),
            ModelConfig::Gemma3(c) => Arch::Gemma3(Gemma3::new(&params, c)?),
        };
        Ok(Decoder { config: config.clone(), params, arch, packed_head: None })
    }

    /// Loads `config.json` and `model.safetensors` (or the shards of
    /// `model.safetensors.index.json`) from an HF model directory, or a GGUF checkpoint (a
    /// `.gguf` file, or a directory holding one and no `config.json`). Every parameter must be
    /// found.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, |_| {})
    }

    /// Like [`Decoder::load`], editing the config first (e.g. dropout for fine-tuning).
    pub fn load_with(dir: &Path, device: &Device, edit: impl FnOnce(&mut ModelConfig)) -> Result<Self> {
        if !dir.join("config.json").exists() {
            if let Some(file) = crate::gguf::find(dir)? {
                return Ok(crate::gguf::load_decoder(&file, device, edit)?.0);
            }
        }
        let mut config = ModelConfig::from_file(&dir.join("config.json"))?;
        edit(&mut config);
        let model = Decoder::for_loading(&config, device)?;
        let mut files = Vec::new();
        let single = dir.join("model.safetensors");
        if single.exists() {
            files.push(single);
        } else {
            let index = dir.join("model.safetensors.index.json");
            let s = std::fs::read_to_string(&index).with_context(|| format!("no model.safetensors or {}", index.display()))?;
            let v: serde_json::Value = serde_json::from_str(&s)?;
            let mut shards: Vec<String> =
                v["weight_map"].as_object().map(|m| m.values().filter_map(|f| f.as_str().map(String::from)).collect()).unwrap_or_default();
            shards.sort();
            shards.dedup();
            files.extend(shards.into_iter().map(|f| dir.join(f)));
        }
        let mut loaded = std::collections::BTreeSet::new();
        for f in files {
            let report = model.params.load(&f, |n| model.rename(n))?;
            loaded.extend(report.loaded);
        }
        let missing: Vec<String> = model.params.vars().into_iter().map(|(n, _)| n).filter(|n| !loaded.contains(n)).collect();
        if !missing.is_empty() {
            bail!("{}: parameters missing from the checkpoint: {}", dir.display(), missing.join(", "));
        }
        Ok(model)
    }

    pub(crate) fn rename(&self, name: &str) -> Option<String> {
        match &self.arch {
            Arch::Gpt2(_) => Gpt2::hf_rename(name),
            Arch::Llama(m) => m.hf_rename(name),
            Arch::Gemma3(m) => m.hf_rename(name),
        }
    }

    /// Writes `config.json` and `model.safetensors` (HF layout) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        self.params.save(&dir.join("model.safetensors"))?;
        self.config.save(&dir.join("config.json"))
    }

    /// `(layers, kv_heads, head_dim)`.
    pub fn kv_shape(&self) -> (usize, usize, usize) {
        match &self.arch {
            Arch::Gpt2(m) => m.kv_shape(),
            Arch::Llama(m) => m.kv_shape(),
            Arch::Gemma3(m) => m.kv_shape(),
        }
    }

    pub fn new_cache(&self, batch: usize, max_len: usize) -> Result<KvCache> {
        let (l, kvh, hd) = self.kv_shape();
        KvCache::new(l, batch, kvh, max_len, hd, self.params.dtype(), self.params.device())
    }

    /// Hidden states `[batch, len, hidden]`. `positions`: `[batch or 1, len]` u32; `bias`: see
    /// [`crate::layers::causal_bias`]; with a cache, keys/values are appended to it.
    pub fn forward(&self, ids: &Tensor, positions: &Tensor, bias: Option<&Tensor>, cache: Option<&mut KvCache>, mode: &mut Mode) -> Result<Tensor> {
        match &self.arch {
            Arch::Gpt2(m) => m.forward(ids, positions, bias, cache, mode),
            Arch::Llama(m) => m.forward(ids, positions, bias, cache, mode),
            Arch::Gemma3(m) => m.forward(ids, positions, bias, cache, mode),
        }
    }

    /// Logits `[.., vocab]` of hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        if let Some(p) = &self.packed_head {
            return self.cap_logits(p.forward_tensor(hidden)?);
        }
        match &self.arch {
            Arch::Gpt2(m) => m.logits(hidden),
            Arch::Llama(m) => m.logits(hidden),
            Arch::Gemma3(m) => m.logits(hidden),
        }
    }

    /// The final soft cap of the logits (Gemma), applied to the output layer's products.
    pub fn cap_logits(&self, logits: Tensor) -> Result<Tensor> {
        match &self.arch {
            Arch::Gemma3(m) => m.softcap(logits),
            Arch::Gpt2(_) | Arch::Llama(_) => Ok(logits),
        }
    }

    /// The output layer's weight `[vocab, hidden]`, packed for inference or not, where the layer
    /// is that one product (tied, or an untied head without bias or adapter).
    pub fn output_weight(&self) -> Option<&Tensor> {
        match &self.arch {
            Arch::Gpt2(m) => m.tied_head(),
            Arch::Llama(m) => m.head_weight(),
            Arch::Gemma3(m) => m.head_weight(),
        }
    }

    /// The output layer as its weight `[vocab, hidden]` and final soft cap, where it is one plain
    /// product (what [`nn::linear_ce`] fuses with the loss); `None` for a head with a bias or an
    /// adapter, or one packed for inference.
    pub fn head_weight(&self) -> Option<(&Tensor, Option<f64>)> {
        if self.packed_head.is_some() {
            return None;
        }
        match &self.arch {
            Arch::Gpt2(m) => m.tied_head().map(|w| (w, None)),
            Arch::Llama(m) => m.head_weight().map(|w| (w, None)),
            Arch::Gemma3(m) => m.head_weight().map(|w| (w, m.config.final_logit_softcapping)),
        }
    }

    /// Logits `[batch, len, vocab]` of full sequences `ids` `[batch, len]` (no padding, no cache).
    pub fn forward_logits(&self, ids: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        self.logits(&self.forward_full(ids, mode)?)
    }

    /// Hidden states `[batch, len, hidden]` of full sequences `ids` `[batch, len]` (no padding, no cache).
    pub fn forward_full(&self, ids: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        let t = ids.dim(1)?;
        let positions = Tensor::arange(0u32, t as u32, ids.device())?.unsqueeze(0)?;
        let bias = crate::layers::causal_bias(&[0], 0, t, ids.device(), self.params.dtype())?;
        self.forward(ids, &positions, Some(&bias), None, mode)
    }

    pub fn projs_mut(&mut self) -> Vec<&mut Proj> {
        match &mut self.arch {
            Arch::Gpt2(m) => m.projs_mut(),
            Arch::Llama(m) => m.projs_mut(),
            Arch::Gemma3(m) => m.projs_mut(),
        }
    }

    /// Cuts every base weight out of the autograd graph (LoRA training; inference without graph
    /// bookkeeping).
    pub fn freeze(&mut self) -> Result<()> {
        match &mut self.arch {
            Arch::Gpt2(m) => m.freeze(),
            Arch::Llama(m) => m.freeze(),
            Arch::Gemma3(m) => return m.freeze(),
        }
        Ok(())
    }

    /// Stores GPT-2's `Conv1D` weights (`[in, out]`) transposed, as `nn.Linear` (`[out, in]`):
    /// with the few rows of decoding, a GEMM streams a `[out, in]` weight 1.5–2.5× faster
    /// (`cargo run --release -p bench --bin matmul_speed`). Outputs are unchanged up to
    /// rounding; only for generation (the model can no longer be saved in HF layout).
    pub fn prepare_decoding(&mut self) -> Result<()> {
        match &mut self.arch {
            Arch::Gpt2(m) => m.projs_mut().into_iter().try_for_each(|p| p.to_linear_layout()),
            Arch::Llama(_) | Arch::Gemma3(_) => Ok(()),
        }
    }

    /// Packs every projection and the output layer for the inference GEMM at `precision`
    /// (`nn::infer`): bf16 halves the bytes a decoding step streams, where the CPU has AVX-512
    /// BF16 (elsewhere the packed weights stay f32). Generation only: the model is frozen, its
    /// adapters must be merged, and the packed copies add their size to memory. Not on GPUs.
    pub fn pack(&mut self, precision: Precision) -> Result<()> {
        if !self.params.device().is_cpu() {
            return Ok(());
        }
        self.freeze()?;
        for p in self.projs_mut() {
            p.pack(precision)?;
        }
        let tied = match &self.arch {
            Arch::Gpt2(m) => m.tied_head(),
            Arch::Llama(m) => m.tied_head(),
            Arch::Gemma3(m) => m.tied_head(),
        };
        self.packed_head = tied.map(|w| PackedLinear::from_weight(w, None, precision)).transpose()?.map(Arc::new);
        Ok(())
    }

    /// Freezes the base and adds LoRA adapters to the target modules; the adapters' variables go
    /// into a new [`Params`] (PEFT names), returned for the optimizer and for saving.
    pub fn add_lora(&mut self, cfg: &LoraConfig, seed: u64) -> Result<Params> {
        if cfg.rank == 0 {
            bail!("LoRA rank must be positive");
        }
        let targets = if cfg.target_modules.is_empty() { self.config.default_lora_targets() } else { cfg.target_modules.clone() };
        self.freeze()?;
        let adapters = Params::new(self.params.device().clone(), self.params.dtype(), seed);
        let mut n = 0;
        for p in self.projs_mut() {
            if targets.iter().any(|t| t == p.short_name()) {
                p.add_lora(&adapters, cfg)?;
                n += 1;
            }
        }
        if n == 0 {
            bail!("no module matches the LoRA targets {targets:?}");
        }
        Ok(adapters)
    }

    /// Loads adapter weights saved by [`crate::lora::save_adapter`] into the adapters' variables.
    pub fn load_adapter_weights(adapters: &Params, path: &Path) -> Result<()> {
        let report = adapters.load(path, |n| Some(n.to_string()))?;
        if !report.missing.is_empty() || !report.unexpected.is_empty() {
            bail!("{}: adapter mismatch (missing {:?}, unexpected {:?})", path.display(), report.missing, report.unexpected);
        }
        Ok(())
    }

    /// Folds every adapter into its base weight (the base parameter is updated in place, so
    /// [`Decoder::save`] then writes the merged model).
    pub fn merge_lora(&mut self) -> Result<()> {
        let params = self.params.clone();
        for p in self.projs_mut() {
            let Some(l) = p.lora.take() else { continue };
            let delta = (l.b.matmul(&l.a)? * l.scale)?;
            let delta = if p.conv1d { delta.t()?.contiguous()? } else { delta };
            let name = format!("{}.weight", p.name);
            let var = params.get(&name).with_context(|| format!("no parameter {name}"))?;
            let merged = (var.as_tensor().detach() + delta.detach())?;
            // Var::set writes into the shared storage: the (possibly detached) weight of the
            // projection sees the merged values too.
            var.set(&merged)?;
        }
        Ok(())
    }
}
