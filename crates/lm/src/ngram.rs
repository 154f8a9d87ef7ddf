//! The "floor" generator: a word n-gram model (default 4-gram) with Witten–Bell interpolation.
//!
//! Tokens are words *with the whitespace before them* (`" Juan"`, `"\nNombre"`, `":"`), so a
//! document is the plain concatenation of its tokens and generated texts keep the layout (line
//! breaks, header lines) of real ones.
//!
//! The next-token distribution at history `h` mixes maximum-likelihood estimates of every order,
//! `p_k(w) = λ_k·ML(w | h_k) + (1 − λ_k)·p_{k−1}(w)` with `λ_k = c(h_k) / (c(h_k) + T(h_k))`
//! (`T` = number of distinct followers), starting from the shortest context that was seen (the
//! previous word, so candidates are that word's followers, not the whole vocabulary: sampling
//! stays cheap). Temperature, top-k and top-p then apply as for the neural models.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use corpus::Document;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::prompts::{sample_id, sample_seed, Prompt};
use crate::sampling::{sample, SamplingConfig, Walk};

const BOS: u32 = 0;
const EOS: u32 = 1;

/// File name of the model's tables inside its directory (next to `config.json`).
pub const NGRAM_FILE: &str = "ngram.json";

/// Training options of the n-gram baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NgramConfig {
    /// n of the n-gram (4: three words of context).
    pub order: usize,
}

impl Default for NgramConfig {
    fn default() -> Self {
        NgramConfig { order: 4 }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Followers {
    total: u32,
    /// (token, count), sorted by token so iteration order never depends on a hash map.
    next: Vec<(u32, u32)>,
}

/// A trained word n-gram model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NgramModel {
    pub order: usize,
    vocab: Vec<String>,
    /// `tables[k]`: contexts of `k` tokens → followers (`tables[0]` has the empty context).
    #[serde(with = "tables_as_lists")]
    tables: Vec<HashMap<Vec<u32>, Followers>>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

/// Splits a text into whitespace-prefixed word tokens; their concatenation is the text minus
/// trailing whitespace.
pub fn word_tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut prev = 0;
    for t in corpus::tokenize(text) {
        out.push(chars[prev..t.end].iter().collect());
        prev = t.end;
    }
    out
}

impl NgramModel {
    /// Counts n-grams of every order up to `config.order` over the documents' texts.
    pub fn train(docs: &[Document], config: &NgramConfig) -> Result<Self> {
        if config.order < 1 {
            bail!("n-gram order must be at least 1");
        }
        if docs.is_empty() {
            bail!("cannot train the n-gram generator on 0 documents: give it at least one training document (check data.train and the prompt hold-out)");
        }
        let n = config.order;
        let mut model = NgramModel {
            order: n,
            vocab: vec!["<s>".into(), "</s>".into()],
            tables: vec![HashMap::new(); n],
            index: HashMap::new(),
        };
        model.reindex();
        let mut counts: Vec<HashMap<Vec<u32>, HashMap<u32, u32>>> = vec![HashMap::new(); n];
        for d in docs {
            let mut seq = vec![BOS; n - 1];
            for w in word_tokens(&d.text) {
                let id = model.intern(w);
                seq.push(id);
            }
            seq.push(EOS);
            for i in (n - 1)..seq.len() {
                for (k, table) in counts.iter_mut().enumerate() {
                    let ctx = seq[i - k..i].to_vec();
                    *table.entry(ctx).or_default().entry(seq[i]).or_default() += 1;
                }
            }
        }
        for (k, table) in counts.into_iter().enumerate() {
            model.tables[k] = table
                .into_iter()
                .map(|(ctx, f)| {
                    let mut next: Vec<(u32, u32)> = f.into_iter().collect();
                    next.sort_unstable();
                    let total = next.iter().map(|x| x.1).sum();
                    (ctx, Followers { total, next })
                })
                .collect();
        }
        Ok(model)
    }

    fn intern(&mut self, w: String) -> u32 {
        if let Some(&id) = self.index.get(&w) {
            return id;
        }
        let id = self.vocab.len() as u32;
        self.index.insert(w.clone(), id);
        self.vocab.push(w);
        id
    }

    fn reindex(&mut self) {
        self.index = self.vocab.iter().enumerate().map(|(i, w)| (w.clone(), i as u32)).collect();
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Writes `config.json` (`{"model_type": "ngram", ...}`) and `ngram.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let config = serde_json::json!({ "model_type": "ngram", "order": self.order, "vocab_size": self.vocab.len() });
        fsutil::atomic_write(&dir.join(NGRAM_FILE), &serde_json::to_vec(self)?)?;
        fsutil::atomic_write(&dir.join("config.json"), serde_json::to_string_pretty(&config)?.as_bytes())?;
        Ok(())
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(NGRAM_FILE);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut m: NgramModel = serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        if m.order < 1 || m.tables.len() != m.order || !m.tables[0].contains_key(&[][..]) {
            bail!("{}: no unigram table (a model trained on no documents?); train it again on at least one document", path.display());
        }
        m.reindex();
        Ok(m)
    }

    /// The interpolated distribution after `history` (token ids, most recent last), as
    /// (token, probability) over the support of the shortest seen context.
    fn distribution(&self, history: &[u32]) -> Vec<(u32, f64)> {
        let n = self.order;
        let ctx_of = |k: usize| -> Option<&Followers> {
            if k > history.len() {
                return None;
            }
            self.tables[k].get(&history[history.len() - k..])
        };
        // The shortest seen non-empty context defines the support; the unigram only if none is.
        let start = (1..n).find(|&k| ctx_of(k).is_some()).unwrap_or(0);
        let base = ctx_of(start).or_else(|| self.tables[0].get(&[][..])).expect("unigram table");
        let mut probs: Vec<(u32, f64)> = base.next.iter().map(|&(w, c)| (w, c as f64 / base.total as f64)).collect();
        let pos: HashMap<u32, usize> = probs.iter().enumerate().map(|(i, &(w, _))| (w, i)).collect();
        for k in start + 1..n {
            let Some(f) = ctx_of(k) else { continue };
            let lambda = f.total as f64 / (f.total as f64 + f.next.len() as f64);
            for p in probs.iter_mut() {
                p.1 *= 1.0 - lambda;
            }
            for &(w, c) in &f.next {
                // Followers of a longer context also follow its suffix, so `w` is in the support.
                if let Some(&i) = pos.get(&w) {
                    probs[i].1 += lambda * c as f64 / f.total as f64;
                }
            }
        }
        probs
    }

    /// Token ids of a prompt, preceded by the start-of-document padding. Words never seen map to
    /// no id: the history is cut there, so lookups back off to what follows.
    fn prompt_history(&self, text: &str) -> Vec<u32> {
        let mut h = vec![BOS; self.order.saturating_sub(1)];
        for w in word_tokens(text) {
            match self.index.get(&w) {
                Some(&id) => h.push(id),
                None => h.clear(),
            }
        }
        h
    }

    /// Continues `prompt` with at most `max_words` words drawn with `rng`; stops at end of document.
    /// Also returns the number of words drawn (`max_words` when it was cut there).
    fn continue_text(&self, prompt: &str, max_words: usize, sampling: &SamplingConfig, rng: &mut ChaCha8Rng) -> (String, usize) {
        let mut history = self.prompt_history(prompt);
        let mut out = String::new();
        let mut drawn = 0;
        for _ in 0..max_words {
            let dist = self.distribution(&history);
            if dist.is_empty() {
                break;
            }
            let logits: Vec<f32> = dist.iter().map(|&(_, p)| p.ln() as f32).collect();
            let next = dist[sample(&logits, sampling, Walk::MostLikelyFirst, rng)].0;
            if next == EOS {
                break;
            }
            out.push_str(&self.vocab[next as usize]);
            history.push(next);
            drawn += 1;
        }
        (out, drawn)
    }

    /// `samples` documents per prompt, ids `{prompt_id}__s{NNN}`, each seeded by
    /// (seed, prompt id, sample index).
    pub fn generate(&self, prompts: &[Prompt], samples: usize, max_words: usize, sampling: &SamplingConfig, seed: u64) -> Vec<Document> {
        self.generate_counted(prompts, samples, max_words, sampling, seed).into_iter().map(|(d, _)| d).collect()
    }

    /// [`Self::generate`] with each sample's number of new words (`max_words`: it was cut there).
    pub fn generate_counted(&self, prompts: &[Prompt], samples: usize, max_words: usize, sampling: &SamplingConfig, seed: u64) -> Vec<(Document, usize)> {
        let mut docs = Vec::with_capacity(prompts.len() * samples);
        for p in prompts {
            for s in 0..samples {
                let mut rng = ChaCha8Rng::seed_from_u64(sample_seed(seed, &p.id, s));
                let (more, words) = self.continue_text(&p.text, max_words, sampling, &mut rng);
                docs.push((Document { id: sample_id(&p.id, s), text: format!("{}{more}", p.text), spans: Vec::new() }, words));
            }
        }
        docs
    }

    /// Per-word perplexity of documents (end-of-document included), under the same interpolated
    /// distribution; a word outside the support gets probability `1e-6`.
    pub fn perplexity(&self, docs: &[Document]) -> f64 {
        let (mut nll, mut count) = (0.0, 0usize);
        for d in docs {
            let mut history = vec![BOS; self.order - 1];
            let mut words: Vec<Option<u32>> = word_tokens(&d.text).into_iter().map(|w| self.index.get(&w).copied()).collect();
            words.push(Some(EOS));
            for w in words {
                let p = w
                    .and_then(|w| self.distribution(&history).into_iter().find(|x| x.0 == w).map(|x| x.1))
                    .unwrap_or(1e-6)
                    .max(1e-6);
                nll -= p.ln();
                count += 1;
                match w {
                    Some(w) => history.push(w),
                    None => history.clear(),
                }
            }
        }
        (nll / count.max(1) as f64).exp()
    }
}

/// JSON object keys must be strings, so each table is written as a list of
/// `[context, followers]` pairs sorted by context (the file is then byte-for-byte reproducible).
mod tables_as_lists {
    use super::*;
    use serde::{Deserializer, Serializer};

    type Tables = Vec<HashMap<Vec<u32>, Followers>>;

    pub fn serialize<S: Serializer>(tables: &Tables, s: S) -> Result<S::Ok, S::Error> {
        let lists: Vec<Vec<(&Vec<u32>, &Followers)>> = tables
            .iter()
            .map(|t| {
                let mut v: Vec<_> = t.iter().collect();
                v.sort_unstable_by(|a, b| a.0.cmp(b.0));
                v
            })
            .collect();
        lists.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tables, D::Error> {
        let lists: Vec<Vec<(Vec<u32>, Followers)>> = Vec::deserialize(d)?;
        Ok(lists.into_iter().map(|l| l.into_iter().collect()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs() -> Vec<Document> {
        let t = ["Nombre: Juan Pérez.\nEdad: 45 años.\nMotivo: dolor.", "Nombre: Ana Ruiz.\nEdad: 30 años.\nMotivo: fiebre."];
        t.iter().enumerate().map(|(i, t)| Document { id: format!("d{i}"), text: t.to_string(), spans: vec![] }).collect()
    }

    /// Issue 25, case 3: training on no documents gave a model whose first use panicked
    /// (`unigram table`); now training refuses, and so does loading such a model.
    #[test]
    fn issue25_case3_no_training_documents_is_an_error_not_a_panic() {
        let e = NgramModel::train(&[], &NgramConfig::default()).unwrap_err().to_string();
        assert!(e.contains("0 documents"), "{e}");
        let empty = NgramModel { order: 4, vocab: vec![], tables: vec![HashMap::new(); 4], index: HashMap::new() };
        let dir = tempfile::tempdir().unwrap();
        empty.save(dir.path()).unwrap();
        let e = NgramModel::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no unigram table"), "{e}");
        // One document with an empty text still has a unigram table (the end token).
        let one = [Document { id: "a".into(), text: String::new(), spans: vec![] }];
        let m = NgramModel::train(&one, &NgramConfig::default()).unwrap();
        assert!(!m.perplexity(&docs()).is_nan());
    }

    #[test]
    fn tokens_concatenate_to_the_text() {
        let t = "  Nombre:  Juan\n\nEdad: 4 ";
        assert_eq!(word_tokens(t).concat(), t.trim_end());
    }

    #[test]
    fn trains_generates_deterministically_and_round_trips() {
        let m = NgramModel::train(&docs(), &NgramConfig::default()).unwrap();
        let prompts = vec![Prompt { id: "p".into(), text: "Nombre: Juan".into() }];
        let cfg = SamplingConfig { temperature: 1.0, top_k: 0, top_p: 1.0 };
        let a = m.generate(&prompts, 3, 50, &cfg, 7);
        let b = m.generate(&prompts, 3, 50, &cfg, 7);
        assert_eq!(a, b);
        assert_eq!(a[2].id, "p__s002");
        assert!(a.iter().all(|d| d.text.starts_with("Nombre: Juan")));
        // A document may end after any sentence; with 3 samples some go on to the next line.
        assert!(a.iter().any(|d| d.text.contains("\nEdad: ")), "{a:?}");
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let m2 = NgramModel::load(dir.path()).unwrap();
        assert_eq!(m2.generate(&prompts, 3, 50, &cfg, 7), a);
        let ppl = m.perplexity(&docs());
        assert!(ppl > 1.0 && ppl < 3.0, "{ppl}");
        // Distributions are normalised.
        let s: f64 = m.distribution(&[BOS, BOS, BOS]).iter().map(|x| x.1).sum();
        assert!((s - 1.0).abs() < 1e-9);
    }
}
