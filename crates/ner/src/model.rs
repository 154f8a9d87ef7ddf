//! The token-classification model: encoder + optional word-shape embedding + linear head, its
//! input encoding over word windows, and prediction stitched back to character spans.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor, D};
use corpus::{Document, Token};
use nn::{Embedding, Encoder, EncoderConfig, Init, Linear, Mode, Params};
use serde::{Deserialize, Serialize};

use crate::features::{lexical_ids, lexical_rows, shape_id, LEXICAL_FEATURES};
use tagging::decoding::{mean_top2_margin, penalize_o, search_o_penalty};
use tagging::TagSet;
use crate::subword::{Subwords, WordCache};

/// A document's tokens and, per token, the encoder's log-probabilities over the tags.
pub type Emissions = (Vec<Token>, Vec<Vec<f32>>);

/// Settings of the model beyond the HF encoder config, stored under `"synthdeid"` in
/// `config.json` so that a model directory is self-describing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaggerSettings {
    /// Words per window (the paper: 128).
    pub window: usize,
    /// Step between prediction windows; `< window` gives overlap, and each token's prediction is
    /// taken from the window where it is most central.
    pub stride: usize,
    /// Sub-words kept per word (the first carries the label; the rest only add context).
    pub max_subwords_per_word: usize,
    /// Word-shape buckets; 0 disables the shape embedding.
    pub shape_buckets: usize,
    /// Hash buckets of the lower-cased word identity, and of its 3-character prefix and suffix
    /// ([`crate::features::lexical_ids`]); 0 (models saved before these existed) disables them.
    #[serde(default)]
    pub word_buckets: usize,
    #[serde(default)]
    pub affix_buckets: usize,
    /// Stacking: each word's input also carries the tag that the feature perceptron in `guide/`
    /// gives it ([`Model::guide`]), so the encoder learns where to trust and where to correct it.
    #[serde(default)]
    pub guide: bool,
    /// Decoding of a stacked model adds this times the guide perceptron's own tag scores to the
    /// encoder's log-probabilities (and its transition scores to the encoder's): a product of the
    /// two taggers, whose errors differ. Picked on dev during training ([`crate::train`]); 0 is
    /// the encoder alone.
    #[serde(default)]
    pub guide_weight: f32,
    /// Decoding subtracts this from every token's `O` score (after the guide's share is added):
    /// a tagger trained on text that is mostly `O` leans to it (on MEDDOCAN test, token precision
    /// 0.977 against recall 0.961), and a penalty picked on dev trades a little precision for
    /// recall. 0 (models saved before it existed) leaves the scores as they are.
    #[serde(default)]
    pub o_penalty: f32,
    /// Sequences per prediction batch.
    pub predict_batch: usize,
}

impl Default for TaggerSettings {
    fn default() -> Self {
        TaggerSettings {
            window: 128,
            stride: 96,
            max_subwords_per_word: 8,
            shape_buckets: 1024,
            word_buckets: 0,
            affix_buckets: 0,
            guide: false,
            guide_weight: 0.0,
            o_penalty: 0.0,
            predict_batch: 32,
        }
    }
}

/// One window of one document, encoded.
#[derive(Debug, Clone)]
pub struct Example {
    /// Sub-word ids with `[CLS]` first and `[SEP]` last.
    pub ids: Vec<u32>,
    /// Shape bucket per sub-word (0 for the special tokens).
    pub shapes: Vec<u32>,
    /// [`LEXICAL_FEATURES`] lexical-table rows per sub-word, those of its word (0 for the special
    /// tokens); empty when the model has no lexical features.
    pub lexical: Vec<u32>,
    /// Guide tag + 1 per sub-word, that of its word (0 for the special tokens); empty without a
    /// guide.
    pub guide: Vec<u32>,
    /// Position in `ids` of each word's first sub-word.
    pub first: Vec<u32>,
    /// Gold tag per word (empty when predicting).
    pub tags: Vec<u32>,
    /// Which document and which of its tokens `[token_start, token_end)` this window holds.
    pub doc: usize,
    pub token_start: usize,
    pub token_end: usize,
}

/// A padded batch as tensors.
pub struct Batch {
    pub ids: Tensor,
    pub mask: Tensor,
    pub shapes: Tensor,
    /// `[b, len, LEXICAL_FEATURES]`, when the model has lexical features.
    pub lexical: Option<Tensor>,
    /// `[b, len]` guide tags + 1, when the model has a guide.
    pub guide: Option<Tensor>,
    /// Flat positions `b * len + i` of the labelled sub-words, in example order.
    pub first: Tensor,
    pub tags: Option<Tensor>,
    /// Number of real (non-padding) sub-words.
    pub tokens: usize,
}

/// Name prefixes of the parameters a tagger adds to an encoder (head and input tables): a
/// pre-trained checkpoint does not hold them.
pub const TASK_PARAM_PREFIXES: [&str; 4] = ["classifier.", "shape_embeddings.", "lexical_embeddings.", "guide_embeddings."];

/// Folder of [`Model::guide`] in a model directory.
pub const GUIDE_DIR: &str = "guide";

/// File of [`Model::transitions`] in a model directory.
pub const TRANSITIONS_FILE: &str = "transitions.json";

/// A trained (or training) tagger.
pub struct Model {
    pub params: Params,
    pub config: EncoderConfig,
    pub settings: TaggerSettings,
    pub labels: TagSet,
    pub subwords: Subwords,
    /// Tag-transition log-probabilities of the training documents ([`TagSet::transition_log_probs`]),
    /// added in decoding; `None` decodes with the BIO constraints only.
    pub transitions: Option<Vec<f32>>,
    /// The feature perceptron whose tags are inputs when `settings.guide` (saved in `guide/`).
    pub guide: Option<perceptron::Perceptron>,
    /// Moves predicted entities' edges after decoding (saved as `boundaries.json`; see
    /// `TrainConfig::boundaries`).
    pub boundaries: Option<tagging::BoundaryModel>,
    encoder: Encoder,
    shapes: Option<Embedding>,
    lexical: Option<Embedding>,
    guide_embeddings: Option<Embedding>,
    classifier: Linear,
    /// The weights packed once by [`Model::pack_for_inference`] (a loaded model that only
    /// predicts); otherwise each prediction call packs its own copy.
    packed: std::sync::Mutex<Option<std::sync::Arc<Inference>>>,
}

impl Model {
    /// Builds the model's parameters (random, from `seed`). `config.vocab_size` must cover the
    /// tokenizer. Shape embeddings start at zero when `zero_shapes` (fine-tuning a pre-trained
    /// encoder, whose input distribution they would otherwise perturb).
    pub fn new(
        config: EncoderConfig,
        settings: TaggerSettings,
        labels: TagSet,
        subwords: Subwords,
        seed: u64,
        zero_shapes: bool,
    ) -> Result<Self> {
        if subwords.vocab_size() > config.vocab_size {
            bail!("tokenizer has {} entries, model vocab_size {}", subwords.vocab_size(), config.vocab_size);
        }
        let params = Params::new(nn::device(), DType::F32, seed);
        let encoder = Encoder::new(&params.pp(config.hf_prefix()), &config)?;
        let std = config.initializer_range;
        let shapes = if settings.shape_buckets > 0 {
            let init = if zero_shapes { Init::Zeros } else { Init::Normal(std) };
            let w = params.pp("shape_embeddings").get(&[settings.shape_buckets, config.hidden_size], "weight", init)?;
            Some(Embedding { weight: w })
        } else {
            None
        };
        // The task's own input tables, absent from any pre-trained checkpoint.
        let task_embedding = |name: &str, rows: usize| -> Result<Embedding> {
            let init = if zero_shapes { Init::Zeros } else { Init::Normal(std) };
            Ok(Embedding { weight: params.pp(name).get(&[rows, config.hidden_size], "weight", init)? })
        };
        let lexical = if settings.word_buckets > 0 || settings.affix_buckets > 0 {
            Some(task_embedding("lexical_embeddings", lexical_rows(settings.word_buckets, settings.affix_buckets))?)
        } else {
            None
        };
        let guide_embeddings = if settings.guide { Some(task_embedding("guide_embeddings", labels.len() + 1)?) } else { None };
        let classifier = Linear::new(&params.pp("classifier"), config.hidden_size, labels.len(), true, std)?;
        Ok(Model {
            params,
            config,
            settings,
            labels,
            subwords,
            transitions: None,
            guide: None,
            boundaries: None,
            encoder,
            shapes,
            lexical,
            guide_embeddings,
            classifier,
            packed: Default::default(),
        })
    }

    /// Writes `config.json` (HF, with `id2label`/`label2id` and our settings), `model.safetensors`,
    /// `tokenizer.json` and `labels.json`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut config = self.config.clone();
        let id2label: serde_json::Map<String, serde_json::Value> =
            self.labels.tags.iter().enumerate().map(|(i, t)| (i.to_string(), t.clone().into())).collect();
        let label2id: serde_json::Map<String, serde_json::Value> =
            self.labels.tags.iter().enumerate().map(|(i, t)| (t.clone(), i.into())).collect();
        let arch = match config.hf_prefix() {
            "roberta" if config.model_type.starts_with("xlm") => "XLMRobertaForTokenClassification",
            "roberta" => "RobertaForTokenClassification",
            _ => "BertForTokenClassification",
        };
        config.extra.insert("architectures".into(), serde_json::json!([arch]));
        config.extra.insert("id2label".into(), id2label.into());
        config.extra.insert("label2id".into(), label2id.into());
        config.extra.insert("synthdeid".into(), serde_json::to_value(&self.settings)?);
        config.save(&dir.join("config.json"))?;
        self.params.save(&dir.join("model.safetensors"))?;
        self.subwords.save(&dir.join("tokenizer.json"))?;
        fsutil::atomic_write(&dir.join("labels.json"), serde_json::to_string_pretty(&self.labels.tags)?.as_bytes())?;
        if let Some(t) = &self.transitions {
            fsutil::atomic_write(&dir.join(TRANSITIONS_FILE), serde_json::to_string(t)?.as_bytes())?;
        }
        if let Some(g) = &self.guide {
            g.save(&dir.join(GUIDE_DIR))?;
        }
        match &self.boundaries {
            Some(b) => b.save(dir)?,
            None => remove_if_present(&dir.join(tagging::BOUNDARY_FILE))?,
        }
        Ok(())
    }

    /// Loads a directory written by [`Model::save`].
    pub fn load(dir: &Path) -> Result<Self> {
        let mut config = EncoderConfig::from_file(&dir.join("config.json"))?;
        let settings: TaggerSettings = match config.extra.remove("synthdeid") {
            Some(v) => serde_json::from_value(v).context("config.json: synthdeid settings")?,
            None => TaggerSettings::default(),
        };
        for k in ["id2label", "label2id", "architectures"] {
            config.extra.remove(k);
        }
        let tags: Vec<String> = serde_json::from_str(
            &std::fs::read_to_string(dir.join("labels.json")).with_context(|| format!("reading {}/labels.json", dir.display()))?,
        )?;
        let labels = TagSet::from_tags(tags);
        let subwords = Subwords::from_file(&dir.join("tokenizer.json"))?;
        let mut model = Model::new(config, settings, labels, subwords, 0, false)?;
        model.load_weights(&dir.join("model.safetensors"))?;
        let tpath = dir.join(TRANSITIONS_FILE);
        if tpath.exists() {
            let t: Vec<f32> = serde_json::from_str(&std::fs::read_to_string(&tpath)?).with_context(|| tpath.display().to_string())?;
            anyhow::ensure!(t.len() == (model.labels.len() + 1) * model.labels.len(), "{}: wrong size", tpath.display());
            model.transitions = Some(t);
        }
        if model.settings.guide {
            let g = dir.join(GUIDE_DIR);
            model.guide = Some(perceptron::Perceptron::load(&g).with_context(|| {
                format!("{} is a stacked model but its guide perceptron could not be read", dir.display())
            })?);
        }
        model.boundaries = tagging::BoundaryModel::load_if_present(dir)?;
        Ok(model)
    }

    /// Loads our own weights file: every parameter must be present.
    pub fn load_weights(&self, path: &Path) -> Result<()> {
        *self.packed.lock().unwrap() = None;
        let report = self.params.load(path, |n| Some(n.to_string()))?;
        if !report.missing.is_empty() {
            bail!("{}: missing {:?}", path.display(), report.missing);
        }
        Ok(())
    }

    /// Forward pass → logits `[b, l, tags]`.
    pub fn logits(&self, batch: &Batch, mode: &mut Mode) -> Result<Tensor> {
        let mut inputs = Vec::new();
        if let Some(e) = &self.shapes {
            inputs.push(e.forward(&batch.shapes)?);
        }
        if let (Some(e), Some(ids)) = (&self.guide_embeddings, &batch.guide) {
            inputs.push(e.forward(ids)?);
        }
        if let (Some(e), Some(ids)) = (&self.lexical, &batch.lexical) {
            // [b, l, F, h] summed over the F features of each sub-word's word.
            inputs.push(e.forward(ids)?.sum(2)?);
        }
        let mut extra: Option<Tensor> = None;
        for x in inputs {
            extra = Some(match extra {
                Some(acc) => (acc + x)?,
                None => x,
            });
        }
        let h = self.encoder.forward(&batch.ids, &batch.mask, extra.as_ref(), mode)?;
        self.classifier.forward(&h)
    }

    /// Log-probabilities of the tags at the labelled sub-words `[words, tags]`.
    pub fn word_log_probs(&self, batch: &Batch, mode: &mut Mode) -> Result<Tensor> {
        let logits = self.logits(batch, mode)?;
        let (b, l, k) = logits.dims3()?;
        let picked = logits.reshape((b * l, k))?.index_select(&batch.first, 0)?;
        Ok(candle_nn::ops::log_softmax(&picked, D::Minus1)?)
    }

    /// Mean cross-entropy over the labelled words of a batch.
    pub fn loss(&self, batch: &Batch, mode: &mut Mode) -> Result<Tensor> {
        let lp = self.word_log_probs(batch, mode)?;
        let tags = batch.tags.as_ref().context("batch without gold tags")?;
        let nll = lp.gather(&tags.unsqueeze(1)?, 1)?.neg()?;
        Ok(nll.mean_all()?)
    }

    /// Encodes the windows of `docs` (size `settings.window`, step `stride`). With `gold`, each
    /// window carries the BIO tags of its words. A stacked model's guide tags come from
    /// [`Model::guide`].
    pub fn encode(&self, docs: &[Document], stride: usize, gold: bool) -> Vec<Example> {
        let guides = self.settings.guide.then(|| {
            self.guide.as_ref().expect("a stacked model always holds its guide perceptron (set at build and load)").predict(docs)
        });
        self.encode_guided(docs, guides.as_deref(), stride, gold)
    }

    /// [`Model::encode`] with the guide's predictions given (`guides[i]` for `docs[i]`), as in
    /// training, where they come from perceptrons that did not see the document.
    pub fn encode_guided(&self, docs: &[Document], guides: Option<&[Document]>, stride: usize, gold: bool) -> Vec<Example> {
        let mut cache = WordCache::new(&self.subwords);
        let mut out = Vec::new();
        for (di, doc) in docs.iter().enumerate() {
            let chars: Vec<char> = doc.text.chars().collect();
            let tokens = corpus::tokenize::tokenize_chars(&chars);
            let tags: Vec<u32> = if gold { self.labels.encode(&tokens, &doc.spans).into_iter().map(|t| t as u32).collect() } else { Vec::new() };
            let guide: Vec<u32> = match guides {
                Some(g) if self.settings.guide => self.labels.encode(&tokens, &g[di].spans).into_iter().map(|t| t as u32 + 1).collect(),
                _ => Vec::new(),
            };
            let words: Vec<String> = tokens.iter().map(|t| chars[t.start..t.end].iter().collect()).collect();
            for w in corpus::windows(&tokens, self.settings.window, stride) {
                let guide = if guide.is_empty() { &[][..] } else { &guide[w.token_start..w.token_end] };
                out.push(self.encode_window(&mut cache, &words[w.token_start..w.token_end], &tags, guide, di, w.token_start));
            }
        }
        out
    }

    fn encode_window(
        &self,
        cache: &mut WordCache,
        words: &[String],
        tags: &[u32],
        guide_tags: &[u32],
        doc: usize,
        start: usize,
    ) -> Example {
        let budget = self.config.max_position_embeddings.saturating_sub(2 + self.config.position_offset().unwrap_or(0) as usize);
        let pieces: Vec<Vec<u32>> = words.iter().map(|w| cache.get(w).to_vec()).collect();
        let mut per_word = self.settings.max_subwords_per_word.max(1);
        // Shrink the per-word cap until the window fits the position table (rarely needed).
        while per_word > 1 && pieces.iter().map(|p| p.len().min(per_word)).sum::<usize>() > budget {
            per_word /= 2;
        }
        let mut ids = vec![self.subwords.cls];
        let mut shapes = vec![0u32];
        let has_lexical = self.lexical.is_some();
        let mut lexical = if has_lexical { vec![0u32; LEXICAL_FEATURES] } else { Vec::new() };
        let has_guide = self.guide_embeddings.is_some();
        let mut guide = if has_guide { vec![0u32] } else { Vec::new() };
        let mut first = Vec::with_capacity(words.len());
        for (wi, (w, p)) in words.iter().zip(&pieces).enumerate() {
            if ids.len() > budget {
                break; // more words than positions; the tail words are dropped (never at 128 words)
            }
            first.push(ids.len() as u32);
            let sid = if self.settings.shape_buckets > 0 { shape_id(w, self.settings.shape_buckets) } else { 0 };
            let lex = if has_lexical { lexical_ids(w, self.settings.word_buckets, self.settings.affix_buckets) } else { [0; LEXICAL_FEATURES] };
            for &id in p.iter().take(per_word) {
                ids.push(id);
                shapes.push(sid);
                if has_lexical {
                    lexical.extend_from_slice(&lex);
                }
                if has_guide {
                    guide.push(guide_tags.get(wi).copied().unwrap_or(0));
                }
            }
        }
        ids.push(self.subwords.sep);
        shapes.push(0);
        if has_lexical {
            lexical.extend_from_slice(&[0; LEXICAL_FEATURES]);
        }
        if has_guide {
            guide.push(0);
        }
        let n = first.len();
        let tags = if tags.is_empty() { Vec::new() } else { tags[start..start + n].to_vec() };
        Example { ids, shapes, lexical, guide, first, tags, doc, token_start: start, token_end: start + n }
    }

    /// Pads examples into tensors.
    pub fn batch(&self, examples: &[&Example]) -> Result<Batch> {
        let len = examples.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let b = examples.len();
        let (mut ids, mut mask, mut shapes) = (vec![self.subwords.pad; b * len], vec![0u32; b * len], vec![0u32; b * len]);
        const F: usize = LEXICAL_FEATURES;
        let mut lexical = if self.lexical.is_some() { vec![0u32; b * len * F] } else { Vec::new() };
        let mut guide = if self.guide_embeddings.is_some() { vec![0u32; b * len] } else { Vec::new() };
        let mut first = Vec::new();
        let mut tags = Vec::new();
        let mut tokens = 0;
        for (i, e) in examples.iter().enumerate() {
            let o = i * len;
            ids[o..o + e.ids.len()].copy_from_slice(&e.ids);
            shapes[o..o + e.ids.len()].copy_from_slice(&e.shapes);
            if !lexical.is_empty() {
                lexical[o * F..(o + e.ids.len()) * F].copy_from_slice(&e.lexical);
            }
            if !guide.is_empty() {
                guide[o..o + e.ids.len()].copy_from_slice(&e.guide);
            }
            mask[o..o + e.ids.len()].fill(1);
            first.extend(e.first.iter().map(|&f| o as u32 + f));
            tags.extend_from_slice(&e.tags);
            tokens += e.ids.len();
        }
        let dev = self.params.device();
        let nf = first.len();
        Ok(Batch {
            ids: Tensor::from_vec(ids, (b, len), dev)?,
            mask: Tensor::from_vec(mask, (b, len), dev)?,
            shapes: Tensor::from_vec(shapes, (b, len), dev)?,
            lexical: if lexical.is_empty() { None } else { Some(Tensor::from_vec(lexical, (b, len, F), dev)?) },
            guide: if guide.is_empty() { None } else { Some(Tensor::from_vec(guide, (b, len), dev)?) },
            first: Tensor::from_vec(first, nf, dev)?,
            tags: if tags.len() == nf && nf > 0 { Some(Tensor::from_vec(tags, nf, dev)?) } else { None },
            tokens,
        })
    }

    /// Predicts spans for each document: same ids and texts, `spans` replaced by predictions.
    pub fn predict(&self, docs: &[Document]) -> Result<Vec<Document>> {
        self.predict_via(docs, ForwardPath::Inference)
    }

    /// For each of this model's tags, its index among the guide's tags (`None`: the guide lacks it).
    fn guide_tag_map(&self, g: &perceptron::Perceptron) -> Vec<Option<usize>> {
        self.labels.tags.iter().map(|t| g.tags.id(t)).collect()
    }

    /// The guide perceptron's tag scores for each document, mapped to this model's tag order
    /// (tags the guide lacks score 0).
    fn guide_scores(&self, g: &perceptron::Perceptron, docs: &[Document], scored: &[(Vec<Token>, Vec<Vec<f32>>)]) -> Vec<Vec<Vec<f32>>> {
        let map = self.guide_tag_map(g);
        docs.iter()
            .zip(scored)
            .map(|(d, (tokens, _))| {
                g.scores(d, tokens).into_iter().map(|row| map.iter().map(|m| m.map_or(0.0, |j| row[j])).collect()).collect()
            })
            .collect()
    }

    /// Spans for each document by constrained Viterbi over the encoder's log-probabilities plus
    /// `weight` times the guide's scores (`guides`, from [`Model::guide_scores`]) and transition
    /// scores; the encoder alone without `guides` or at weight 0. `o_penalty` is subtracted from
    /// each token's `O` (tag 0) score.
    fn decode_all(&self, docs: &[Document], scored: &[(Vec<Token>, Vec<Vec<f32>>)], guides: Option<&[Vec<Vec<f32>>]>, weight: f32, o_penalty: f32) -> Vec<Document> {
        let k = self.labels.len();
        let product = match (guides, self.guide.as_ref()) {
            (Some(gs), Some(g)) if weight != 0.0 => {
                let map = self.guide_tag_map(g);
                let gt = g.transition_scores();
                let gk = g.tags.len();
                let mut trans = self.transitions.clone().unwrap_or_else(|| vec![0.0; (k + 1) * k]);
                for p in 0..=k {
                    let gp = if p == k { Some(gk) } else { map[p] };
                    for c in 0..k {
                        if let (Some(gp), Some(gc)) = (gp, map[c]) {
                            trans[p * k + c] += weight * gt[gp * gk + gc];
                        }
                    }
                }
                Some((gs, trans))
            }
            _ => None,
        };
        docs.iter()
            .zip(scored)
            .enumerate()
            .map(|(i, (doc, (tokens, em)))| {
                let tags = match &product {
                    Some((gs, trans)) => self.labels.viterbi_rows(&combine(em, Some((gs[i].as_slice(), weight)), o_penalty), Some(trans)),
                    None if o_penalty != 0.0 => self.labels.viterbi_rows(&combine(em, None, o_penalty), self.transitions.as_deref()),
                    None => self.labels.viterbi_rows(em, self.transitions.as_deref()),
                };
                let mut d = Document::new(doc.id.clone(), doc.text.clone());
                d.spans = self.labels.decode(tokens, &tags);
                d
            })
            .collect()
    }

    /// Picks the decoding settings on `dev` by `score` (higher is better); the encoder runs once.
    /// First [`TaggerSettings::guide_weight`] (a stacked model only), among multiples of the ratio
    /// of the encoder's to the guide's mean score margin (best and second-best tag); then, with
    /// `tune_o_penalty`, [`TaggerSettings::o_penalty`], among fractions of the mean margin of the
    /// scores so combined. A setting replaces the one before only if it scores strictly higher,
    /// so ties keep the guide-free and penalty-free choices. Returns every setting tried with its
    /// score, in the order tried; the picked ones are set in `self`.
    pub fn tune_decoding(&mut self, dev: &[Document], tune_o_penalty: bool, score: impl Fn(&[Document]) -> Result<f64>) -> Result<Vec<DecodingTrial>> {
        let scored = self.emissions(dev)?;
        let guides = self.guide.as_ref().filter(|_| self.settings.guide).map(|g| self.guide_scores(g, dev, &scored));
        let mut tried = Vec::new();
        // Decodes dev with these settings and records the score.
        let mut run = |w: f32, p: f32| -> Result<f64> {
            let v = score(&self.decode_all(dev, &scored, guides.as_deref(), w, p))?;
            tried.push(DecodingTrial { guide_weight: w, o_penalty: p, score: v });
            Ok(v)
        };
        let enc = mean_top2_margin(scored.iter().flat_map(|(_, e)| e));
        let unit = match &guides {
            Some(gs) => {
                let gui = mean_top2_margin(gs.iter().flatten());
                if gui > 0.0 {
                    (enc / gui) as f32
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        let fracs: &[f32] = if guides.is_some() { &[0.0, 0.25, 0.5, 1.0, 2.0, 4.0] } else { &[0.0] };
        let mut best = (f64::NEG_INFINITY, 0f32);
        for &frac in fracs {
            let v = run(frac * unit, 0.0)?;
            if v > best.0 {
                best = (v, frac * unit);
            }
        }
        let weight = best.1;
        let mut o_penalty = 0.0;
        if tune_o_penalty {
            let margin = match &guides {
                Some(gs) if weight != 0.0 => mean_top2_margin(scored.iter().zip(gs).flat_map(|((_, e), g)| e.iter().zip(g)).map(|(e, g)| combine_row(e, Some((g, weight)), 0.0))),
                _ => enc,
            } as f32;
            o_penalty = search_o_penalty(&O_PENALTY_FRACTIONS, margin, Some((best.0, 0.0)), |_, penalty| run(weight, penalty))?.0;
        }
        self.settings.guide_weight = weight;
        self.settings.o_penalty = o_penalty;
        Ok(tried)
    }

    /// The encoder's per-token log-probabilities for each document (the most central window's
    /// for each token), with the document's tokens.
    pub fn emissions(&self, docs: &[Document]) -> Result<Vec<Emissions>> {
        self.emissions_via(docs, ForwardPath::Inference)
    }

    /// [`Model::predict`] with the encoder run through `path` (the tests compare the two).
    pub fn predict_via(&self, docs: &[Document], path: ForwardPath) -> Result<Vec<Document>> {
        let scored = self.emissions_via(docs, path)?;
        let guide = self.guide.as_ref().filter(|_| self.settings.guide && self.settings.guide_weight != 0.0);
        let guides = guide.map(|g| self.guide_scores(g, docs, &scored));
        let decoded = self.decode_all(docs, &scored, guides.as_deref(), self.settings.guide_weight, self.settings.o_penalty);
        Ok(match &self.boundaries {
            Some(b) => b.apply_all(&decoded),
            None => decoded,
        })
    }

    /// Packs the weights for prediction once, so that every later prediction call reuses them
    /// (a single note then pays only for its own forward pass). For a model that only predicts
    /// from here on ([`crate::load_tagger`] does it): weights trained afterwards would not be seen
    /// (loading weights with [`Model::load_weights`] drops the packed copy).
    pub fn pack_for_inference(&self) -> Result<()> {
        self.pack_for_inference_at(nn::Precision::F32)
    }

    /// [`Model::pack_for_inference`] with the encoder's linear layers at `precision` (bf16:
    /// BENCHMARKS.md measures its speed and spans against f32).
    pub fn pack_for_inference_at(&self, precision: nn::Precision) -> Result<()> {
        let packed = self.inference(precision)?.map(std::sync::Arc::new);
        *self.packed.lock().unwrap() = packed;
        Ok(())
    }

    /// The inference copies of the encoder, the input tables and the head, from the current
    /// weights (packed per call unless [`Model::pack_for_inference`] kept a copy, so a model in
    /// training is never read stale); `None` where the inference path does not run (not f32 on
    /// the CPU).
    fn inference_packed(&self) -> Result<Option<std::sync::Arc<Inference>>> {
        if let Some(p) = self.packed.lock().unwrap().as_ref() {
            return Ok(Some(p.clone()));
        }
        Ok(self.inference(nn::Precision::F32)?.map(std::sync::Arc::new))
    }

    fn inference(&self, precision: nn::Precision) -> Result<Option<Inference>> {
        if !nn::InferenceEncoder::supports(&self.encoder) {
            return Ok(None);
        }
        let table = |e: &Option<Embedding>| -> Result<Option<Vec<f32>>> { e.as_ref().map(|e| Ok(e.weight.flatten_all()?.to_vec1::<f32>()?)).transpose() };
        Ok(Some(Inference {
            encoder: nn::InferenceEncoder::with_precision(&self.encoder, precision)?,
            classifier: nn::infer::PackedLinear::new(&self.classifier)?,
            shapes: table(&self.shapes)?,
            guide: table(&self.guide_embeddings)?,
            lexical: table(&self.lexical)?,
        }))
    }

    /// [`Model::word_log_probs`] of `examples` (unpadded, in eval mode) through the inference
    /// path: one row per labelled sub-word, in example order.
    fn word_log_probs_inference(&self, inf: &Inference, examples: &[&Example]) -> Result<Vec<Vec<f32>>> {
        let h = self.config.hidden_size;
        let n: usize = examples.iter().map(|e| e.ids.len()).sum();
        // The task's input rows, summed in the order `Model::logits` sums them.
        let extra = if inf.shapes.is_some() || inf.guide.is_some() || inf.lexical.is_some() {
            const F: usize = LEXICAL_FEATURES;
            let mut extra = vec![0f32; n * h];
            let mut rows = extra.chunks_mut(h);
            for e in examples {
                for t in 0..e.ids.len() {
                    let row = rows.next().expect("one row per sub-word");
                    let mut first = true;
                    let mut add = |table: &[f32], id: u32| {
                        let src = &table[id as usize * h..(id as usize + 1) * h];
                        if first {
                            row.copy_from_slice(src);
                        } else {
                            row.iter_mut().zip(src).for_each(|(r, &v)| *r += v);
                        }
                        first = false;
                    };
                    if let Some(tab) = &inf.shapes {
                        add(tab, e.shapes[t]);
                    }
                    if let Some(tab) = &inf.guide {
                        add(tab, e.guide[t]);
                    }
                    if let Some(tab) = &inf.lexical {
                        let mut sum = tab[e.lexical[t * F] as usize * h..][..h].to_vec();
                        for f in 1..F {
                            sum.iter_mut().zip(&tab[e.lexical[t * F + f] as usize * h..][..h]).for_each(|(s, &v)| *s += v);
                        }
                        add(&sum, 0);
                    }
                }
            }
            Some(extra)
        } else {
            None
        };
        let seqs: Vec<&[u32]> = examples.iter().map(|e| e.ids.as_slice()).collect();
        let hidden = inf.encoder.forward(&seqs, extra.as_deref())?;
        // Only the labelled sub-words go through the head.
        let mut picked = Vec::new();
        let mut offset = 0;
        for e in examples {
            for &f in &e.first {
                let r = offset + f as usize;
                picked.extend_from_slice(&hidden[r * h..(r + 1) * h]);
            }
            offset += e.ids.len();
        }
        let words = picked.len() / h;
        let k = inf.classifier.out;
        let logits = inf.classifier.forward(&picked, words);
        // log_softmax as candle computes it: x − max − ln Σ exp(x − max).
        Ok(logits
            .chunks(k)
            .map(|row| {
                let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
                let ln = sum.ln();
                row.iter().map(|&v| (v - max) - ln).collect()
            })
            .collect())
    }

    /// [`Model::emissions`] with the encoder run through `path`.
    pub fn emissions_via(&self, docs: &[Document], path: ForwardPath) -> Result<Vec<Emissions>> {
        let stride = self.settings.stride.clamp(1, self.settings.window);
        let examples = self.encode(docs, stride, false);
        // Per document, per token: (centrality, log-probs) of the best window seen so far.
        let token_lists: Vec<Vec<Token>> = docs.iter().map(|d| corpus::tokenize(&d.text)).collect();
        let mut best: Vec<Vec<(i64, Vec<f32>)>> = token_lists.iter().map(|t| vec![(-1, Vec::new()); t.len()]).collect();
        let inference = match path {
            ForwardPath::Inference => self.inference_packed()?,
            ForwardPath::Training => None,
        };
        // Similar lengths together, to pad little (the inference path pads nothing).
        let mut order: Vec<usize> = (0..examples.len()).collect();
        order.sort_by_key(|&i| examples[i].ids.len());
        for chunk in order.chunks(self.settings.predict_batch.max(1)) {
            let exs: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
            let lp: Vec<Vec<f32>> = match &inference {
                Some(inf) => self.word_log_probs_inference(inf, &exs)?,
                None => self.word_log_probs(&self.batch(&exs)?, &mut Mode::Eval)?.to_vec2()?,
            };
            let mut row = 0;
            for e in exs {
                let len = e.token_end - e.token_start;
                for (i, slot) in best[e.doc][e.token_start..e.token_end].iter_mut().enumerate() {
                    let c = i.min(len - 1 - i) as i64;
                    if c > slot.0 {
                        *slot = (c, lp[row].clone());
                    }
                    row += 1;
                }
            }
        }
        let k = self.labels.len();
        Ok(token_lists
            .into_iter()
            .zip(best)
            .map(|(tokens, scores)| {
                // A token no window reached (only if a window overflowed the position table) is `O`.
                let emissions: Vec<Vec<f32>> = scores
                    .into_iter()
                    .map(|(c, s)| if c < 0 { (0..k).map(|i| if i == 0 { 0.0 } else { -1e9 }).collect() } else { s })
                    .collect();
                (tokens, emissions)
            })
            .collect())
    }
}

/// How prediction runs the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardPath {
    /// [`nn::InferenceEncoder`]: no graph, no padding, packed weights (f32 on the CPU; elsewhere
    /// the training forward).
    Inference,
    /// The training forward in eval mode (padded batches through candle's graph).
    Training,
}

/// What [`Model::inference`] packs.
struct Inference {
    encoder: nn::InferenceEncoder,
    classifier: nn::infer::PackedLinear,
    shapes: Option<Vec<f32>>,
    guide: Option<Vec<f32>>,
    lexical: Option<Vec<f32>>,
}

/// The `O` penalties [`Model::tune_decoding`] tries, as fractions of the mean margin between a
/// token's best and second-best tag score (0, the untuned decoding, is tried first). Mostly
/// positive, since a tagger trained on mostly-`O` text misses more than it invents.
pub const O_PENALTY_FRACTIONS: [f32; 6] = [0.02, 0.05, 0.1, 0.2, 0.4, -0.05];

/// One decoding setting tried on dev by [`Model::tune_decoding`], with its score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecodingTrial {
    pub guide_weight: f32,
    pub o_penalty: f32,
    pub score: f64,
}

/// One token's decoding scores: the encoder's, plus `weight` times the guide's, less `o_penalty`
/// on `O` (tag 0).
fn combine_row(em: &[f32], guide: Option<(&[f32], f32)>, o_penalty: f32) -> Vec<f32> {
    let mut row: Vec<f32> = match guide {
        Some((g, w)) => em.iter().zip(g).map(|(a, b)| a + w * b).collect(),
        None => em.to_vec(),
    };
    penalize_o(&mut row, o_penalty);
    row
}

/// [`combine_row`] for each token of a document.
fn combine(em: &[Vec<f32>], guide: Option<(&[Vec<f32>], f32)>, o_penalty: f32) -> Vec<Vec<f32>> {
    em.iter().enumerate().map(|(i, e)| combine_row(e, guide.map(|(g, w)| (g[i].as_slice(), w)), o_penalty)).collect()
}

/// Removes `path` if it exists (a file of an earlier model saved to the same directory).
pub(crate) fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", path.display())),
        _ => Ok(()),
    }
}
