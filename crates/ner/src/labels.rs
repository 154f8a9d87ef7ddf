//! BIO tags over word tokens, constrained Viterbi decoding, and the mapping between spans and
//! tags.

use corpus::{Span, Token};
use serde::{Deserialize, Serialize};

/// The tag set: `O`, then `B-T`, `I-T` for each entity type `T` in sorted order, so tag ids are
/// stable for a given set of types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    /// Tags by id (`labels.json` stores this list).
    pub tags: Vec<String>,
}

impl Labels {
    pub fn from_types<S: AsRef<str>>(types: impl IntoIterator<Item = S>) -> Self {
        let mut ts: Vec<String> = types.into_iter().map(|s| s.as_ref().to_string()).collect();
        ts.sort();
        ts.dedup();
        let mut tags = vec!["O".to_string()];
        for t in ts {
            tags.push(format!("B-{t}"));
            tags.push(format!("I-{t}"));
        }
        Labels { tags }
    }

    /// The entity types found in the documents.
    pub fn from_documents(docs: &[corpus::Document]) -> Self {
        Self::from_types(docs.iter().flat_map(|d| d.spans.iter().map(|s| s.label.as_str())))
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Entity types, in tag order.
    pub fn types(&self) -> Vec<&str> {
        self.tags.iter().filter_map(|t| t.strip_prefix("B-")).collect()
    }

    /// Id of `B-label` (`I-label` is the next id).
    pub fn begin_id(&self, label: &str) -> Option<usize> {
        self.tags.iter().position(|t| t.strip_prefix("B-") == Some(label))
    }

    /// `(is_begin, type)` of a tag id; `None` for `O`.
    pub fn parse(&self, id: usize) -> Option<(bool, &str)> {
        let t = &self.tags[id];
        t.strip_prefix("B-").map(|x| (true, x)).or_else(|| t.strip_prefix("I-").map(|x| (false, x)))
    }

    /// Whether tag `cur` may follow tag `prev` (`None`: sequence start). `I-X` may only continue
    /// `B-X` or `I-X`; everything else is allowed.
    pub fn allowed(&self, prev: Option<usize>, cur: usize) -> bool {
        match self.parse(cur) {
            Some((false, ty)) => match prev.and_then(|p| self.parse(p)) {
                Some((_, pty)) => pty == ty,
                None => false,
            },
            _ => true,
        }
    }

    /// Tags for word tokens from gold spans: a token is in a span when they overlap; the first
    /// such token gets `B-`, the others `I-`. Types unknown to this tag set are left `O`.
    pub fn encode(&self, tokens: &[Token], spans: &[Span]) -> Vec<u32> {
        let mut tags = vec![0u32; tokens.len()];
        let mut spans: Vec<&Span> = spans.iter().collect();
        spans.sort();
        let mut first = 0; // first token that may overlap the current span (spans are sorted)
        for s in spans {
            let Some(b) = self.begin_id(&s.label) else { continue };
            while first < tokens.len() && tokens[first].end <= s.start {
                first += 1;
            }
            let mut begun = false;
            let mut i = first;
            while i < tokens.len() && tokens[i].start < s.end {
                if tokens[i].end > s.start && tags[i] == 0 {
                    tags[i] = if begun { b as u32 + 1 } else { b as u32 };
                    begun = true;
                }
                i += 1;
            }
        }
        tags
    }

    /// Spans from tags: an entity starts at `B-X` (or at an `I-X` that cannot continue, which
    /// constrained decoding never outputs) and extends over following `I-X`; its characters run
    /// from its first token's start to its last token's end.
    pub fn decode(&self, tokens: &[Token], tags: &[usize]) -> Vec<Span> {
        let mut out: Vec<Span> = Vec::new();
        let mut open: Option<(usize, usize, &str)> = None; // (start char, end char, type)
        for (tok, &tag) in tokens.iter().zip(tags) {
            match self.parse(tag) {
                Some((false, ty)) if open.is_some_and(|o| o.2 == ty) => {
                    open.as_mut().unwrap().1 = tok.end;
                }
                Some((_, ty)) => {
                    if let Some((s, e, t)) = open.take() {
                        out.push(Span::new(s, e, t));
                    }
                    open = Some((tok.start, tok.end, ty));
                }
                None => {
                    if let Some((s, e, t)) = open.take() {
                        out.push(Span::new(s, e, t));
                    }
                }
            }
        }
        if let Some((s, e, t)) = open {
            out.push(Span::new(s, e, t));
        }
        out
    }

    /// Log-probabilities of tag transitions in gold documents, `[(prev) * k + cur]` with the start
    /// state as row `k`, add-one smoothed over allowed transitions. A per-token classifier cannot
    /// tell `B-X B-X` (two entities) from `B-X I-X` (one) when both tokens look alike (`28 28 70973`);
    /// the corpus can: the first is rare. Used by [`Labels::viterbi_with`].
    pub fn transition_log_probs(&self, docs: &[corpus::Document]) -> Vec<f32> {
        let k = self.len();
        let mut counts = vec![0f64; (k + 1) * k];
        for d in docs {
            let tokens = corpus::tokenize(&d.text);
            let tags = self.encode(&tokens, &d.spans);
            let mut prev = k;
            for &t in &tags {
                counts[prev * k + t as usize] += 1.0;
                prev = t as usize;
            }
        }
        // Forbidden transitions get a large finite penalty (JSON has no -inf); decoding forbids them anyway.
        let mut out = vec![-1e4f32; (k + 1) * k];
        // Rows of `O` and the start state stay 0: the corpus prior against entering an entity
        // (O→O dominates) would cost recall, and the classifier already decides that well; what
        // it cannot decide is how an entity continues.
        for p in 0..=k {
            if p == k || self.parse(p).is_none() {
                for c in 0..k {
                    out[p * k + c] = if self.allowed((p < k).then_some(p), c) { 0.0 } else { -1e4 };
                }
                continue;
            }
            let prev = (p < k).then_some(p);
            let ok: Vec<usize> = (0..k).filter(|&c| self.allowed(prev, c)).collect();
            let total: f64 = ok.iter().map(|&c| counts[p * k + c] + 1.0).sum();
            for c in ok {
                out[p * k + c] = ((counts[p * k + c] + 1.0) / total).ln() as f32;
            }
        }
        out
    }

    /// The best tag sequence under per-token scores (`emissions[i][tag]`, e.g. log-probabilities)
    /// among sequences with only allowed transitions.
    pub fn viterbi(&self, emissions: &[Vec<f32>]) -> Vec<usize> {
        self.viterbi_with(emissions, None)
    }

    /// Like [`Labels::viterbi`], adding `transitions[(prev) * k + cur]` (start state: row `k`) to
    /// each step's score, e.g. [`Labels::transition_log_probs`].
    pub fn viterbi_with(&self, emissions: &[Vec<f32>], transitions: Option<&[f32]>) -> Vec<usize> {
        let n = emissions.len();
        let k = self.len();
        if n == 0 {
            return Vec::new();
        }
        let allowed: Vec<Vec<bool>> = (0..k).map(|p| (0..k).map(|c| self.allowed(Some(p), c)).collect()).collect();
        let trans = |p: usize, c: usize| transitions.map_or(0.0, |t| t[p * k + c]);
        let mut score: Vec<f32> =
            (0..k).map(|c| if self.allowed(None, c) { emissions[0][c] + trans(k, c) } else { f32::NEG_INFINITY }).collect();
        let mut back = vec![vec![0usize; k]; n];
        for i in 1..n {
            let mut next = vec![f32::NEG_INFINITY; k];
            for c in 0..k {
                let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
                for p in 0..k {
                    let sp = score[p] + trans(p, c);
                    if allowed[p][c] && sp > best {
                        best = sp;
                        arg = p;
                    }
                }
                next[c] = best + emissions[i][c];
                back[i][c] = arg;
            }
            score = next;
        }
        let mut last = (0..k).max_by(|&a, &b| score[a].total_cmp(&score[b]).then(b.cmp(&a))).unwrap();
        let mut path = vec![0; n];
        for i in (0..n).rev() {
            path[i] = last;
            last = back[i][last];
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn encode_decode_roundtrip() {
        let text = "Paciente Juan Pérez de 45 años, Madrid.";
        let toks = corpus::tokenize(text);
        let l = Labels::from_types(["NOMBRE", "EDAD", "TERRITORIO"]);
        let chars: Vec<char> = text.chars().collect();
        let find = |w: &str| {
            let s: String = chars.iter().collect();
            s.find(w).map(|b| s[..b].chars().count()).unwrap()
        };
        let spans = vec![
            Span::new(find("Juan"), find("Juan") + 10, "NOMBRE"),
            Span::new(find("45"), find("45") + 7, "EDAD"),
            Span::new(find("Madrid"), find("Madrid") + 6, "TERRITORIO"),
        ];
        let tags: Vec<usize> = l.encode(&toks, &spans).into_iter().map(|t| t as usize).collect();
        assert_eq!(l.decode(&toks, &tags), spans);
    }

    #[test]
    fn viterbi_never_outputs_invalid_bio() {
        let l = Labels::from_types(["A", "B", "C"]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let n = rng.random_range(1..12);
            // Random scores that often favour I- tags, to tempt invalid transitions.
            let em: Vec<Vec<f32>> = (0..n).map(|_| (0..l.len()).map(|_| rng.random::<f32>() * 5.0).collect()).collect();
            let path = l.viterbi(&em);
            assert_eq!(path.len(), n);
            assert!(l.allowed(None, path[0]));
            for w in path.windows(2) {
                assert!(l.allowed(Some(w[0]), w[1]), "{:?}", path);
            }
        }
        // The argmax would be I-A at the start; Viterbi must pick a valid path instead.
        let ia = l.begin_id("A").unwrap() + 1;
        let mut em = vec![vec![0.0; l.len()]; 2];
        em[0][ia] = 10.0;
        em[1][ia] = 10.0;
        let path = l.viterbi(&em);
        assert_eq!(path, vec![ia - 1, ia]);
    }
}

#[cfg(test)]
mod transition_tests {
    use super::*;
    use corpus::{Document, Span};

    #[test]
    fn the_transition_prior_joins_look_alike_tokens_into_one_entity() {
        let labels = Labels::from_types(["ID"]);
        // Training: the three-token ID is always one entity.
        let docs: Vec<Document> = (0..5)
            .map(|i| Document { id: i.to_string(), text: "NºCol: 28 28 70973.".into(), spans: vec![Span::new(7, 18, "ID")] })
            .collect();
        let t = labels.transition_log_probs(&docs);
        let (o, b, i) = (0, labels.begin_id("ID").unwrap(), labels.begin_id("ID").unwrap() + 1);
        let k = labels.len();
        assert!(t[b * k + i] > t[b * k + b], "B→I is the common transition");
        // A per-token classifier slightly prefers B on the look-alike tokens.
        let em = |bo: f32, bi: f32| -> Vec<f32> {
            let mut v = vec![-5.0; k];
            v[b] = bo;
            v[i] = bi;
            v[o] = -5.0;
            v
        };
        let emissions = vec![em(-0.1, -3.0), em(-0.6, -0.8), em(-0.6, -0.8)];
        assert_eq!(labels.viterbi(&emissions), [b, b, b]);
        assert_eq!(labels.viterbi_with(&emissions, Some(&t)), [b, i, i]);
    }
}
