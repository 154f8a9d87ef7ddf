//! GGUF checkpoints (llama.cpp's format): config, weights and tokenizer from one file.
//!
//! Weights are dequantized to f32 (every block type candle reads: Q4_K, Q5_0, Q6_K, Q8_0, F16,
//! …) under their HF names, so training, LoRA and saving in HF layout work as for a safetensors
//! directory. What llama.cpp's converter changed is undone here: Llama's rotary permutation of
//! q/k rows, and Gemma's `1 + w` norm weights. The tokenizer is rebuilt from the metadata as
//! transformers' GGUF loader does (`integrations/gguf/gguf_tokenizer_mapping.py`): byte-level
//! BPE with the file's merges and split regex, or SentencePiece BPE with byte fallback and merges
//! recovered from the vocabulary.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Replace, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::models::{Decoder, Gemma3Config, LlamaConfig, ModelConfig};
use crate::tokenizer::LmTokenizer;

/// The GGUF file of `path`: the path itself if it is a file, else the one `*.gguf` in the
/// directory (`None` when there is none; an error when there are several).
pub fn find(path: &Path) -> Result<Option<PathBuf>> {
    if path.is_file() {
        return Ok((path.extension().and_then(|e| e.to_str()) == Some("gguf")).then(|| path.to_path_buf()));
    }
    let Ok(entries) = std::fs::read_dir(path) else { return Ok(None) };
    let mut found: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().and_then(|e| e.to_str()) == Some("gguf")).collect();
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => bail!("{}: several .gguf files; pass the one to use as the model path", path.display()),
    }
}

/// An opened GGUF file: its metadata and tensor index (tensors are read on demand).
pub struct Gguf {
    pub path: PathBuf,
    pub content: Content,
}

impl Gguf {
    pub fn open(path: &Path) -> Result<Self> {
        let mut r = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
        let content = Content::read(&mut r).map_err(|e| anyhow!("{}: not a readable GGUF file: {e}", path.display()))?;
        Ok(Gguf { path: path.to_path_buf(), content })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn need(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| anyhow!("{}: GGUF metadata has no `{key}`", self.path.display()))
    }

    pub fn str(&self, key: &str) -> Result<String> {
        Ok(self.need(key)?.to_string().map_err(|e| anyhow!("`{key}`: {e}"))?.clone())
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        as_u64(self.need(key)?).map(|v| v as usize).ok_or_else(|| anyhow!("{}: `{key}` is not an integer", self.path.display()))
    }

    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|v| v.to_f32().map(|f| f as f64).or_else(|_| v.to_f64()).ok())
    }

    pub fn u32_opt(&self, key: &str) -> Option<u32> {
        self.get(key).and_then(as_u64).map(|v| v as u32)
    }

    pub fn bool_opt(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(|v| v.to_bool().ok())
    }

    pub fn strings(&self, key: &str) -> Result<Vec<String>> {
        self.need(key)?
            .to_vec()
            .map_err(|e| anyhow!("`{key}`: {e}"))?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| anyhow!("`{key}`: {e}")))
            .collect()
    }

    fn numbers(&self, key: &str) -> Result<Vec<f64>> {
        self.need(key)?
            .to_vec()
            .map_err(|e| anyhow!("`{key}`: {e}"))?
            .iter()
            .map(|v| as_u64(v).map(|n| n as f64).or_else(|| v.to_f32().ok().map(|f| f as f64)).ok_or_else(|| anyhow!("`{key}`: not a number")))
            .collect()
    }

    pub fn architecture(&self) -> Result<String> {
        self.str("general.architecture")
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// The HF config this file describes.
    pub fn model_config(&self) -> Result<ModelConfig> {
        let arch = self.architecture()?;
        let k = |s: &str| format!("{arch}.{s}");
        let vocab = match self.get(&k("vocab_size")) {
            Some(v) => as_u64(v).unwrap_or(0) as usize,
            None => self.need("tokenizer.ggml.tokens")?.to_vec().map(|v| v.len()).unwrap_or(0),
        };
        let (hidden, layers, heads, ffn) = (self.usize(&k("embedding_length"))?, self.usize(&k("block_count"))?, self.usize(&k("attention.head_count"))?, self.usize(&k("feed_forward_length"))?);
        let kv = self.usize(&k("attention.head_count_kv")).unwrap_or(heads);
        let ctx = self.usize(&k("context_length"))?;
        let eps = self.f64(&k("attention.layer_norm_rms_epsilon")).unwrap_or(1e-6);
        let head_dim = self.usize(&k("attention.key_length")).ok();
        let tied = !self.has_tensor("output.weight");
        let bos = self.u32_opt("tokenizer.ggml.bos_token_id");
        let eos = self.u32_opt("tokenizer.ggml.eos_token_id").map(|e| serde_json::json!(e));
        match arch.as_str() {
            "llama" | "qwen2" | "mistral" => {
                let mut c = LlamaConfig::new(vocab, ctx, hidden, layers, heads, kv, ffn);
                c.model_type = arch.clone();
                c.head_dim = head_dim.filter(|&d| d != hidden / heads);
                c.rms_norm_eps = eps;
                c.rope_theta = Some(self.f64(&k("rope.freq_base")).unwrap_or(10_000.0));
                c.attention_bias = Some(self.has_tensor("blk.0.attn_q.bias"));
                c.tie_word_embeddings = tied;
                c.bos_token_id = bos;
                c.eos_token_id = eos;
                if self.get(&k("rope.scaling.type")).is_some() {
                    bail!("{}: rope scaling is not supported", self.path.display());
                }
                Ok(ModelConfig::Llama(c))
            }
            "gemma3" => {
                let head_dim = head_dim.ok_or_else(|| anyhow!("{}: no `gemma3.attention.key_length`", self.path.display()))?;
                // llama.cpp hard-codes these for Gemma 3 (src/llama-model.cpp): local RoPE base
                // 10000, every 6th layer global, queries scaled by the head size except on 27B.
                let scalar = if layers == 62 { hidden / heads } else { head_dim };
                let v = serde_json::json!({
                    "model_type": "gemma3_text",
                    "vocab_size": vocab,
                    "hidden_size": hidden,
                    "intermediate_size": ffn,
                    "num_hidden_layers": layers,
                    "num_attention_heads": heads,
                    "num_key_value_heads": kv,
                    "head_dim": head_dim,
                    "hidden_activation": "gelu_pytorch_tanh",
                    "max_position_embeddings": ctx,
                    "rms_norm_eps": eps,
                    "rope_theta": self.f64(&k("rope.freq_base")).unwrap_or(1_000_000.0),
                    "rope_local_base_freq": 10_000.0,
                    "query_pre_attn_scalar": scalar,
                    "sliding_window": self.usize(&k("attention.sliding_window"))?,
                    "sliding_window_pattern": 6,
                    "tie_word_embeddings": tied,
                    "bos_token_id": bos,
                    "eos_token_id": eos,
                    "pad_token_id": self.u32_opt("tokenizer.ggml.padding_token_id"),
                });
                if self.get(&k("rope.scaling.type")).is_some() {
                    bail!("{}: rope scaling (Gemma 3 4B+) is not supported", self.path.display());
                }
                Ok(ModelConfig::Gemma3(serde_json::from_value::<Gemma3Config>(v)?))
            }
            other => bail!("{}: GGUF architecture {other:?} is not supported (supported: llama, mistral, qwen2, gemma3)", self.path.display()),
        }
    }

    /// Every tensor dequantized to f32 under its HF name, with llama.cpp's conversions undone.
    pub fn hf_tensors(&self, device: &Device) -> Result<Vec<(String, Tensor)>> {
        let arch = self.architecture()?;
        let heads = self.usize(&format!("{arch}.attention.head_count"))?;
        let kv_heads = self.usize(&format!("{arch}.attention.head_count_kv")).unwrap_or(heads);
        let mut r = BufReader::new(File::open(&self.path)?);
        let mut names: Vec<&String> = self.content.tensor_infos.keys().collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let hf = hf_name(&arch, name).ok_or_else(|| anyhow!("{}: tensor {name} has no HF counterpart for {arch}", self.path.display()))?;
            let q = self.content.tensor(&mut r, name, &Device::Cpu).map_err(|e| anyhow!("{}: reading {name}: {e}", self.path.display()))?;
            let mut t = q.dequantize(&Device::Cpu)?;
            if arch == "llama" && hf.ends_with("q_proj.weight") {
                t = unpermute_rotary(&t, heads)?;
            } else if arch == "llama" && hf.ends_with("k_proj.weight") {
                t = unpermute_rotary(&t, kv_heads)?;
            }
            if arch == "gemma3" && hf.ends_with("norm.weight") {
                t = (t - 1.0)?;
            }
            out.push((hf, t.to_device(device)?));
        }
        Ok(out)
    }

    /// The tokenizer the file describes, built as transformers builds it from a GGUF.
    pub fn tokenizer(&self) -> Result<LmTokenizer> {
        let kind = self.str("tokenizer.ggml.model")?;
        let tokens = self.strings("tokenizer.ggml.tokens")?;
        let types: Vec<u32> = match self.get("tokenizer.ggml.token_type") {
            Some(_) => self.numbers("tokenizer.ggml.token_type")?.into_iter().map(|t| t as u32).collect(),
            None => vec![1; tokens.len()],
        };
        let mut inner = match kind.as_str() {
            "gpt2" => {
                let merges = self.strings("tokenizer.ggml.merges")?;
                let pre = self.str("tokenizer.ggml.pre").unwrap_or_default();
                byte_level_tokenizer(&tokens, &types, &merges, &pre)?
            }
            "llama" => {
                let arch = self.architecture()?;
                let merges = match self.get("tokenizer.ggml.merges") {
                    Some(_) => Some(self.strings("tokenizer.ggml.merges")?),
                    None => None,
                };
                if !arch.starts_with("gemma") {
                    bail!("{}: SentencePiece tokenizers are supported for Gemma only (architecture {arch})", self.path.display());
                }
                gemma_tokenizer(&tokens, &types, merges.as_deref())?
            }
            other => bail!("{}: tokenizer model {other:?} is not supported (gpt2, llama/SentencePiece)", self.path.display()),
        };
        // SentencePiece files without the flag get BOS, as llama.cpp and transformers do.
        let add_bos = self.bool_opt("tokenizer.ggml.add_bos_token").unwrap_or(kind == "llama");
        if let Some(bos) = self.u32_opt("tokenizer.ggml.bos_token_id").filter(|_| add_bos) {
            let name = tokens.get(bos as usize).ok_or_else(|| anyhow!("{}: BOS id {bos} outside the vocabulary", self.path.display()))?;
            let template = TemplateProcessing::builder()
                .try_single(format!("{name} $A"))
                .and_then(|b| b.try_pair(format!("{name} $A {name} $B")))
                .map_err(|e| anyhow!("BOS template: {e}"))?
                .special_tokens(vec![(name.clone(), bos)])
                .build()
                .map_err(|e| anyhow!("BOS template: {e}"))?;
            inner.with_post_processor(Some(template));
        }
        Ok(LmTokenizer { inner })
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::U8(x) => Some(*x as u64),
        Value::I8(x) => Some(*x as u64),
        Value::U16(x) => Some(*x as u64),
        Value::I16(x) => Some(*x as u64),
        Value::U32(x) => Some(*x as u64),
        Value::I32(x) => Some(*x as u64),
        Value::U64(x) => Some(*x),
        Value::I64(x) => Some(*x as u64),
        _ => None,
    }
}

/// llama.cpp's tensor names → HF names, per architecture.
fn hf_name(arch: &str, name: &str) -> Option<String> {
    let fixed = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, suffix) = rest.rsplit_once('.')?;
    let gemma = arch == "gemma3";
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "post_attention_norm" if gemma => "post_attention_layernorm",
        "ffn_norm" if gemma => "pre_feedforward_layernorm",
        "post_ffw_norm" if gemma => "post_feedforward_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// Undoes llama.cpp's `permute` of Llama q/k weights (`convert_hf_to_gguf.py`), which interleaves
/// the two rotary halves of each head: rows `[h, 2, d/2]` were stored as `[h, d/2, 2]`.
fn unpermute_rotary(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let half = out / heads / 2;
    Ok(w.reshape((heads, half, 2, inp))?.transpose(1, 2)?.contiguous()?.reshape((out, inp))?)
}

/// GPT-2's byte ↔ printable-character table (`bytes_to_unicode`).
fn byte_alphabet() -> Vec<char> {
    ByteLevel::alphabet().into_iter().collect()
}

/// Token types of llama.cpp's vocabularies.
const CONTROL: u32 = 3;
const USER_DEFINED: u32 = 4;

/// Byte-level BPE (GPT-2, Qwen2, Llama 3): the file's merges, its split regex, and control /
/// user-defined tokens as added tokens.
fn byte_level_tokenizer(tokens: &[String], types: &[u32], merges: &[String], pre: &str) -> Result<Tokenizer> {
    let alphabet: std::collections::HashSet<char> = byte_alphabet().into_iter().collect();
    let vocab: HashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let merges = merges
        .iter()
        .map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| anyhow!("malformed merge entry in the GGUF")))
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder().vocab_and_merges(vocab.into_iter().collect::<tokenizers::models::bpe::Vocab>(), merges).build().map_err(|e| anyhow!("building BPE: {e}"))?;
    let mut tok = Tokenizer::new(bpe);
    let regex = match pre {
        "qwen2" | "deepseek-r1-qwen" => Some(QWEN2_SPLIT),
        "llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" | "falcon3" => Some(LLAMA3_SPLIT),
        _ => None,
    };
    match regex {
        Some(re) => {
            let split = Split::new(SplitPattern::Regex(re.into()), SplitDelimiterBehavior::Isolated, false).map_err(|e| anyhow!("split regex: {e}"))?;
            tok.with_pre_tokenizer(Some(PreSequence::new(vec![split.into(), ByteLevel::new(false, true, false).into()])));
        }
        None => {
            tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        }
    }
    if pre.starts_with("qwen2") {
        // Qwen2's own tokenizer.json normalises to NFC (transformers' GGUF loader does not; the
        // two agree on NFC text).
        tok.with_normalizer(Some(NFC)).map_err(|e| anyhow!("{e}"))?;
    }
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    let control: Vec<AddedToken> = tokens
        .iter()
        .zip(types)
        .filter(|(t, &ty)| ty == CONTROL && t.chars().all(|c| alphabet.contains(&c)))
        .map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false))
        .collect();
    tok.add_special_tokens(control).map_err(|e| anyhow!("{e}"))?;
    let user: Vec<AddedToken> = tokens.iter().zip(types).filter(|(_, &ty)| ty == USER_DEFINED).map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false)).collect();
    tok.add_tokens(user).map_err(|e| anyhow!("{e}"))?;
    Ok(tok)
}

/// Gemma's SentencePiece BPE with byte fallback. Tokens of two or more spaces are respelled with
/// `▁` as in its tokenizer.json, and merges (which the file lacks) are recovered from the
/// vocabulary in file order: transformers' `gemma_tokenizer` + `generate_merges`.
fn gemma_tokenizer(tokens: &[String], types: &[u32], merges: Option<&[String]>) -> Result<Tokenizer> {
    let respelled: Vec<String> =
        tokens.iter().map(|t| if t.contains(' ') && t.trim().is_empty() { "▁".repeat(t.chars().count()) } else { t.clone() }).collect();
    // Python dict semantics: a repeated token keeps its first place and its last id.
    let mut vocab: HashMap<String, u32> = HashMap::with_capacity(respelled.len());
    let mut order: Vec<&str> = Vec::with_capacity(respelled.len());
    for (i, t) in respelled.iter().enumerate() {
        if vocab.insert(t.clone(), i as u32).is_none() {
            order.push(t);
        }
    }
    let merges: Vec<(String, String)> = match merges {
        Some(m) => m.iter().filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string()))).collect(),
        None => merges_from_vocab(&order, &vocab),
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.iter().map(|(k, v)| (k.clone(), *v)).collect::<tokenizers::models::bpe::Vocab>(), merges)
        .unk_token("<unk>".into())
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(|e| anyhow!("building BPE: {e}"))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_normalizer(Some(Replace::new(" ", "▁").map_err(|e| anyhow!("{e}"))?)).map_err(|e| anyhow!("{e}"))?;
    tok.with_pre_tokenizer(Some(Split::new(SplitPattern::String(" ".into()), SplitDelimiterBehavior::MergedWithPrevious, false).map_err(|e| anyhow!("{e}"))?));
    let decoder: Vec<DecoderWrapper> =
        vec![Replace::new("▁", " ").map_err(|e| anyhow!("{e}"))?.into(), ByteFallback::default().into(), Fuse::default().into()];
    tok.with_decoder(Some(DecoderSequence::new(decoder)));
    let control: Vec<AddedToken> = tokens.iter().zip(types).filter(|(_, &ty)| ty == CONTROL).map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false)).collect();
    tok.add_special_tokens(control).map_err(|e| anyhow!("{e}"))?;
    // User-defined tokens are matched whole, as llama.cpp does; transformers looks them up under
    // their original spelling, so respelled runs of spaces are not among them.
    let user: Vec<AddedToken> = tokens
        .iter()
        .zip(types)
        .filter(|(t, &ty)| ty == USER_DEFINED && vocab.contains_key(t.as_str()))
        .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
        .collect();
    tok.add_tokens(user).map_err(|e| anyhow!("{e}"))?;
    Ok(tok)
}

/// transformers' `generate_merges` with scores `-index`: every split of a token into two
/// vocabulary entries is a merge; merges rank by their token's place in the file, then by the
/// longer left part first (lengths in characters, as Python counts them).
fn merges_from_vocab(order: &[&str], vocab: &HashMap<String, u32>) -> Vec<(String, String)> {
    let mut ranked: Vec<(u32, usize, usize, String, String)> = Vec::new();
    for &merge in order {
        let id = vocab[merge];
        let chars: Vec<(usize, char)> = merge.char_indices().collect();
        for k in 1..chars.len() {
            let (l, r) = merge.split_at(chars[k].0);
            if vocab.contains_key(l) && vocab.contains_key(r) {
                ranked.push((id, k, chars.len() - k, l.to_string(), r.to_string()));
            }
        }
    }
    // Sorted descending by (score = -id, len(left), len(right)): ascending id, then longer left.
    ranked.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
    ranked.into_iter().map(|(_, _, _, l, r)| (l, r)).collect()
}

const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Loads a GGUF checkpoint as an f32 [`Decoder`] and its tokenizer, editing the config first.
pub fn load_decoder(path: &Path, device: &Device, edit: impl FnOnce(&mut ModelConfig)) -> Result<(Decoder, LmTokenizer)> {
    let g = Gguf::open(path)?;
    let mut config = g.model_config()?;
    edit(&mut config);
    let model = Decoder::for_loading(&config, device)?;
    let report = model.params.load_tensors(g.hf_tensors(device)?, |n| model.rename(n))?;
    if !report.missing.is_empty() {
        bail!("{}: parameters missing from the GGUF: {}", path.display(), report.missing.join(", "));
    }
    if !report.unexpected.is_empty() {
        bail!("{}: tensors the model has no place for: {}", path.display(), report.unexpected.join(", "));
    }
    Ok((model, g.tokenizer()?))
}

/// Converts a GGUF checkpoint into an HF directory (`config.json`, `model.safetensors` in f32,
/// `tokenizer.json`) that transformers and `--init` load.
pub fn write_hf_dir(gguf: &Path, out: &Path) -> Result<()> {
    let (model, tok) = load_decoder(gguf, &Device::Cpu, |_| {})?;
    model.save(out)?;
    tok.save(&out.join("tokenizer.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_rank_by_token_order_then_longer_left() {
        let toks = ["a", "b", "c", "ab", "abc", "bc"];
        let vocab: HashMap<String, u32> = toks.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
        let m = merges_from_vocab(&toks, &vocab);
        let m: Vec<(&str, &str)> = m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(m, vec![("a", "b"), ("ab", "c"), ("a", "bc"), ("b", "c")]);
    }

    #[test]
    fn rotary_unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(h, 2, d/2, in).swapaxes(1, 2).reshape(out, in).
        let (h, d, inp) = (2, 4, 3);
        let w = Tensor::arange(0f32, (h * d * inp) as f32, &Device::Cpu).unwrap().reshape((h * d, inp)).unwrap();
        let permuted = w.reshape((h, 2, d / 2, inp)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap().reshape((h * d, inp)).unwrap();
        let back = unpermute_rotary(&permuted, h).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
    }

    #[test]
    fn gguf_names_map_to_hf_names() {
        assert_eq!(hf_name("qwen2", "blk.3.ffn_norm.weight").unwrap(), "model.layers.3.post_attention_layernorm.weight");
        assert_eq!(hf_name("gemma3", "blk.3.ffn_norm.weight").unwrap(), "model.layers.3.pre_feedforward_layernorm.weight");
        assert_eq!(hf_name("gemma3", "blk.0.post_ffw_norm.weight").unwrap(), "model.layers.0.post_feedforward_layernorm.weight");
        assert_eq!(hf_name("qwen2", "blk.10.attn_q.bias").unwrap(), "model.layers.10.self_attn.q_proj.bias");
        assert_eq!(hf_name("qwen2", "output.weight").unwrap(), "lm_head.weight");
        assert!(hf_name("qwen2", "blk.0.attn_unknown.weight").is_none());
    }
}
