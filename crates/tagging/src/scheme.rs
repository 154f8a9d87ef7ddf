//! Tag sets over word tokens (BIO or BILOU), the transitions they allow, and the mapping between
//! spans and tags.

use anyhow::{bail, Result};
use corpus::{Document, Span, Token};
use serde::{Deserialize, Serialize};

/// How tags mark the tokens of an entity. A tag set's scheme is that of its tags: BILOU when it
/// has `L-` or `U-` tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagScheme {
    /// `B-X` on an entity's first token, `I-X` on the others.
    #[default]
    Bio,
    /// `B-X` first, `I-X` inside, `L-X` last, `U-X` for a one-token entity: an entity's last
    /// token has weights of its own and the decoder must close each entity where it ends.
    Bilou,
}

impl TagScheme {
    /// Tags per label (after `O`, each label's tags are consecutive: B, I[, L, U]).
    pub fn tags_per_label(self) -> usize {
        match self {
            TagScheme::Bio => 2,
            TagScheme::Bilou => 4,
        }
    }
}

impl std::str::FromStr for TagScheme {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bio" => Ok(TagScheme::Bio),
            "bilou" => Ok(TagScheme::Bilou),
            other => bail!("unknown tag scheme {other:?}: use bio or bilou"),
        }
    }
}

/// The part of an entity a tag marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Begin,
    Inside,
    Last,
    Unit,
}

impl Part {
    /// Whether the tag continues an entity opened before it (`I-`, `L-`).
    pub fn continues(self) -> bool {
        matches!(self, Part::Inside | Part::Last)
    }
}

/// The tag set: `O`, then for each entity type `T` in sorted order `B-T`, `I-T` (and `L-T`,
/// `U-T` in BILOU), so tag ids are stable for a given set of types and each type's tags are
/// consecutive (token-level scores rely on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TagSet {
    /// Tags by id (saved as this list).
    pub tags: Vec<String>,
}

impl TagSet {
    pub fn from_types<S: AsRef<str>>(types: impl IntoIterator<Item = S>, scheme: TagScheme) -> Self {
        let mut ts: Vec<String> = types.into_iter().map(|s| s.as_ref().to_string()).collect();
        ts.sort();
        ts.dedup();
        let mut tags = vec!["O".to_string()];
        for t in ts {
            tags.push(format!("B-{t}"));
            tags.push(format!("I-{t}"));
            if scheme == TagScheme::Bilou {
                tags.push(format!("L-{t}"));
                tags.push(format!("U-{t}"));
            }
        }
        TagSet { tags }
    }

    /// The entity types found in the documents.
    pub fn from_documents(docs: &[Document], scheme: TagScheme) -> Self {
        Self::from_types(docs.iter().flat_map(|d| d.spans.iter().map(|s| s.label.as_str())), scheme)
    }

    /// A tag set read from its tags (as `labels.json` or a saved tagger stores them).
    pub fn from_tags(tags: Vec<String>) -> Self {
        TagSet { tags }
    }

    pub fn scheme(&self) -> TagScheme {
        if self.tags.iter().any(|t| t.starts_with("L-") || t.starts_with("U-")) {
            TagScheme::Bilou
        } else {
            TagScheme::Bio
        }
    }

    pub fn tags_per_label(&self) -> usize {
        self.scheme().tags_per_label()
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

    /// Id of `B-label` (the label's other tags follow it).
    pub fn begin_id(&self, label: &str) -> Option<usize> {
        self.tags.iter().position(|t| t.strip_prefix("B-") == Some(label))
    }

    /// Id of a tag string.
    pub fn id(&self, tag: &str) -> Option<usize> {
        self.tags.iter().position(|t| t == tag)
    }

    /// `(part, type)` of a tag id; `None` for `O`.
    pub fn parse(&self, id: usize) -> Option<(Part, &str)> {
        let t = self.tags[id].as_str();
        let (p, rest) = t.split_at_checked(2)?;
        let part = match p {
            "B-" => Part::Begin,
            "I-" => Part::Inside,
            "L-" => Part::Last,
            "U-" => Part::Unit,
            _ => return None,
        };
        Some((part, rest))
    }

    /// Whether tag `cur` may follow tag `prev` (`None`: sequence start): `I-X` and `L-X` only
    /// after `B-X` or `I-X`; in BILOU, `B-X` and `I-X` only before `I-X` or `L-X`.
    pub fn allowed(&self, prev: Option<usize>, cur: usize) -> bool {
        self.allowed_in(self.scheme(), prev, cur)
    }

    /// [`TagSet::allowed`] with the scheme given (decoding reads it once, not once per pair).
    fn allowed_in(&self, scheme: TagScheme, prev: Option<usize>, cur: usize) -> bool {
        let bilou = scheme == TagScheme::Bilou;
        let cur = self.parse(cur);
        let continues = cur.is_some_and(|(p, _)| p.continues());
        match prev.and_then(|p| self.parse(p)) {
            Some((Part::Begin | Part::Inside, pty)) => (continues && cur.map(|c| c.1) == Some(pty)) || (!bilou && !continues),
            _ => !continues,
        }
    }

    /// Whether a path may end on tag `id` (a BILOU entity must be closed by `L-` or `U-`).
    pub fn may_end(&self, id: usize) -> bool {
        self.may_end_in(self.scheme(), id)
    }

    fn may_end_in(&self, scheme: TagScheme, id: usize) -> bool {
        !(scheme == TagScheme::Bilou && matches!(self.parse(id), Some((Part::Begin | Part::Inside, _))))
    }

    /// Tag strings of word tokens from gold spans: a token is in a span when they overlap; spans
    /// are taken in order and one whose tokens another already holds is left out. In BILOU, an
    /// entity's last token is `L-` and a one-token entity `U-`.
    pub fn encode_strings(scheme: TagScheme, tokens: &[Token], spans: &[Span]) -> Vec<String> {
        let mut sorted = spans.to_vec();
        sorted.sort();
        let doc = Document { id: String::new(), text: String::new(), spans: sorted };
        let mut tags = corpus::conll::bio_tags(&doc, tokens).0;
        if scheme == TagScheme::Bilou {
            for i in 0..tags.len() {
                // The next tag is still BIO here: it is rewritten after this one.
                let continues = tags.get(i + 1).is_some_and(|n| n.starts_with("I-") && n.get(2..) == tags[i].get(2..));
                if continues {
                    continue;
                }
                if let Some(l) = tags[i].strip_prefix("B-") {
                    tags[i] = format!("U-{l}");
                } else if let Some(l) = tags[i].strip_prefix("I-") {
                    tags[i] = format!("L-{l}");
                }
            }
        }
        tags
    }

    /// Tag ids of word tokens from gold spans ([`TagSet::encode_strings`] in this set's scheme);
    /// types unknown to this tag set are left `O`.
    pub fn encode(&self, tokens: &[Token], spans: &[Span]) -> Vec<usize> {
        let ids: std::collections::HashMap<&str, usize> = self.tags.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
        Self::encode_strings(self.scheme(), tokens, spans).iter().map(|t| ids.get(t.as_str()).copied().unwrap_or(0)).collect()
    }

    /// Spans from a tag path: a span runs from a `B-X` or `U-X` (or a stray `I-X` or `L-X`, which
    /// constrained decoding never outputs) over the `I-X` and `L-X` that follow; `L-X` and `U-X`
    /// close it. Its characters run from its first token's start to its last token's end.
    pub fn decode(&self, tokens: &[Token], path: &[usize]) -> Vec<Span> {
        let mut spans = Vec::new();
        let mut open: Option<(&str, usize, usize)> = None;
        for (tok, &y) in tokens.iter().zip(path) {
            let parsed = self.parse(y);
            let cont = parsed.is_some_and(|(p, l)| p.continues() && open.is_some_and(|o| o.0 == l));
            if cont {
                open.as_mut().expect("open span").2 = tok.end;
            } else {
                if let Some((l, s, e)) = open.take() {
                    spans.push(Span::new(s, e, l));
                }
                if let Some((_, l)) = parsed {
                    open = Some((l, tok.start, tok.end));
                }
            }
            if parsed.is_some_and(|(p, _)| matches!(p, Part::Last | Part::Unit)) {
                if let Some((l, s, e)) = open.take() {
                    spans.push(Span::new(s, e, l));
                }
            }
        }
        if let Some((l, s, e)) = open {
            spans.push(Span::new(s, e, l));
        }
        spans
    }

    /// Log-probabilities of tag transitions in gold documents, `[(prev) * k + cur]` with the start
    /// state as row `k`, add-one smoothed over allowed transitions. A per-token classifier cannot
    /// tell `B-X B-X` (two entities) from `B-X I-X` (one) when both tokens look alike (`28 28 70973`);
    /// the corpus can: the first is rare. Rows of `O` and the start state stay 0 (allowed) or
    /// a large finite penalty (forbidden; JSON has no -inf, and decoding forbids them anyway).
    pub fn transition_log_probs(&self, docs: &[Document]) -> Vec<f32> {
        let k = self.len();
        let mut counts = vec![0f64; (k + 1) * k];
        for d in docs {
            let tokens = corpus::tokenize(&d.text);
            let mut prev = k;
            for t in self.encode(&tokens, &d.spans) {
                counts[prev * k + t] += 1.0;
                prev = t;
            }
        }
        let mut out = vec![-1e4f32; (k + 1) * k];
        let scheme = self.scheme();
        // The corpus prior against entering an entity (O→O dominates) would cost recall, and the
        // classifier already decides that well; what it cannot decide is how an entity continues.
        for p in 0..=k {
            let prev = (p < k).then_some(p);
            if p == k || self.parse(p).is_none() {
                for c in 0..k {
                    out[p * k + c] = if self.allowed_in(scheme, prev, c) { 0.0 } else { -1e4 };
                }
                continue;
            }
            let ok: Vec<usize> = (0..k).filter(|&c| self.allowed_in(scheme, prev, c)).collect();
            let total: f64 = ok.iter().map(|&c| counts[p * k + c] + 1.0).sum();
            for c in ok {
                out[p * k + c] = ((counts[p * k + c] + 1.0) / total).ln() as f32;
            }
        }
        out
    }

    /// The best tag path over `n` tokens among those with only allowed transitions (and, in
    /// BILOU, closed at the end): `emit(i, out)` writes token `i`'s tag scores; `transitions`
    /// (`[(previous) * tags + tag]`, the start state as the last row) are added to each step.
    /// Ties: between previous tags the lower id, at the last token the higher (what the
    /// perceptron's training has always done; an untrained model's all-equal scores start it on
    /// a path of entity tags rather than all `O`).
    pub fn viterbi(&self, n: usize, mut emit: impl FnMut(usize, &mut [f32]), transitions: Option<&[f32]>) -> Vec<usize> {
        let t = self.len();
        if n == 0 {
            return vec![];
        }
        let trans = |p: usize, y: usize| transitions.map_or(0.0, |tr| tr[p * t + y]);
        // The allowed previous tags of each tag, in order (the first best is kept, as when all
        // are tried): an `I-X` has two, so this skips most of the t² pairs.
        let scheme = self.scheme();
        let prevs: Vec<Vec<usize>> = (0..t).map(|y| (0..t).filter(|&p| self.allowed_in(scheme, Some(p), y)).collect()).collect();
        let mut score = vec![f32::NEG_INFINITY; n * t];
        let mut back = vec![0u16; n * t];
        let mut e = vec![0f32; t];
        emit(0, &mut e);
        for y in 0..t {
            if self.allowed_in(scheme, None, y) {
                score[y] = e[y] + trans(t, y);
            }
        }
        for i in 1..n {
            emit(i, &mut e);
            for y in 0..t {
                let mut best = f32::NEG_INFINITY;
                let mut arg = 0;
                for &p in &prevs[y] {
                    let s = score[(i - 1) * t + p];
                    if s == f32::NEG_INFINITY {
                        continue;
                    }
                    let s = s + trans(p, y);
                    if s > best {
                        best = s;
                        arg = p;
                    }
                }
                score[i * t + y] = best + e[y];
                back[i * t + y] = arg as u16;
            }
        }
        let last = |y: usize| if self.may_end_in(scheme, y) { score[(n - 1) * t + y] } else { f32::NEG_INFINITY };
        let mut y = (0..t).max_by(|&a, &b| last(a).total_cmp(&last(b))).unwrap_or(0);
        let mut path = vec![0; n];
        for i in (0..n).rev() {
            path[i] = y;
            y = back[i * t + y] as usize;
        }
        path
    }

    /// [`TagSet::viterbi`] over score rows (`emissions[i][tag]`).
    pub fn viterbi_rows(&self, emissions: &[Vec<f32>], transitions: Option<&[f32]>) -> Vec<usize> {
        self.viterbi(emissions.len(), |i, out| out.copy_from_slice(&emissions[i]), transitions)
    }
}

/// Token-level micro F1 over tag-id paths: a token counts for its label's type (each label's
/// tags are consecutive after `O`), whatever its part.
pub fn token_f1<G: AsRef<[usize]>, P: AsRef<[usize]>>(gold: &[G], pred: &[P], tags_per_label: usize) -> f64 {
    let (mut tp, mut fp, mut fnn) = (0usize, 0usize, 0usize);
    let ty = |t: usize| t.div_ceil(tags_per_label);
    for (g, p) in gold.iter().zip(pred) {
        for (&a, &b) in g.as_ref().iter().zip(p.as_ref()) {
            match (ty(a), ty(b)) {
                (0, 0) => {}
                (x, y) if x == y => tp += 1,
                (0, _) => fp += 1,
                (_, 0) => fnn += 1,
                _ => {
                    fp += 1;
                    fnn += 1;
                }
            }
        }
    }
    if tp == 0 {
        0.0
    } else {
        2.0 * tp as f64 / (2 * tp + fp + fnn) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn set(tags: &[&str]) -> TagSet {
        TagSet::from_tags(tags.iter().map(|t| t.to_string()).collect())
    }

    /// The best-scoring path among all valid ones, by trying every path (tiny cases only).
    fn brute_force(s: &TagSet, emissions: &[Vec<f32>], transitions: &[f32]) -> f32 {
        let (t, n) = (s.len(), emissions.len());
        let mut best = f32::NEG_INFINITY;
        for code in 0..t.pow(n as u32) {
            let path: Vec<usize> = (0..n).map(|i| code / t.pow(i as u32) % t).collect();
            let valid = (0..n).all(|i| s.allowed((i > 0).then(|| path[i - 1]), path[i])) && s.may_end(path[n - 1]);
            if valid {
                let sc: f32 = (0..n).map(|i| emissions[i][path[i]] + transitions[if i == 0 { t } else { path[i - 1] } * t + path[i]]).sum();
                best = best.max(sc);
            }
        }
        best
    }

    /// Viterbi over only the allowed previous tags finds the best valid path, BIO and BILOU.
    #[test]
    fn viterbi_finds_the_best_valid_path() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for s in [set(&["O", "B-A", "I-A", "B-B", "I-B"]), set(&["O", "B-A", "I-A", "L-A", "U-A", "B-B", "I-B", "L-B", "U-B"])] {
            let t = s.len();
            for n in 1..=4 {
                for _ in 0..25 {
                    let emissions: Vec<Vec<f32>> = (0..n).map(|_| (0..t).map(|_| rng.random_range(-2.0..2.0)).collect()).collect();
                    let transitions: Vec<f32> = (0..(t + 1) * t).map(|_| rng.random_range(-1.0..1.0)).collect();
                    let path = s.viterbi_rows(&emissions, Some(&transitions));
                    assert!((0..n).all(|i| s.allowed((i > 0).then(|| path[i - 1]), path[i])), "invalid path {path:?}");
                    assert!(s.may_end(path[n - 1]), "{path:?} ends inside an entity");
                    let sc: f32 = (0..n).map(|i| emissions[i][path[i]] + transitions[if i == 0 { t } else { path[i - 1] } * t + path[i]]).sum();
                    assert!((sc - brute_force(&s, &emissions, &transitions)).abs() < 1e-4, "{:?}: {path:?} scores {sc}", s.tags);
                }
            }
        }
    }

    #[test]
    fn viterbi_never_continues_across_types() {
        let s = TagSet::from_types(["A", "B"], TagScheme::Bio);
        // Token 1 prefers I-B (id 4) after B-A (id 1): not allowed, so B-B or I-A wins.
        let em = vec![vec![0.0, 5.0, 0.0, 0.0, 0.0], vec![0.0, 0.0, 1.0, 0.5, 3.0]];
        let path = s.viterbi_rows(&em, None);
        assert_eq!(path[0], 1);
        assert_ne!(path[1], 4);
        assert!(s.viterbi_rows(&[], None).is_empty());
    }

    /// BILOU gold tags mark one-token entities `U-` and last tokens `L-`, and spans read back from
    /// them are the gold spans; BIO tags are unchanged.
    #[test]
    fn bilou_tags_round_trip_to_spans() {
        let text = "Ana Gil vive en Soria , calle Mayor 3 .";
        let tokens = corpus::tokenize(text);
        let at = |w: &str| text.find(w).unwrap();
        let spans = vec![Span::new(0, 7, "NOMBRE"), Span::new(at("Soria"), at("Soria") + 5, "TERRITORIO"), Span::new(at("calle"), at("3") + 1, "CALLE")];
        let bilou = TagSet::encode_strings(TagScheme::Bilou, &tokens, &spans);
        assert_eq!(bilou, ["B-NOMBRE", "L-NOMBRE", "O", "O", "U-TERRITORIO", "O", "B-CALLE", "I-CALLE", "L-CALLE", "O"]);
        let bio = TagSet::encode_strings(TagScheme::Bio, &tokens, &spans);
        assert_eq!(bio, ["B-NOMBRE", "I-NOMBRE", "O", "O", "B-TERRITORIO", "O", "B-CALLE", "I-CALLE", "I-CALLE", "O"]);
        for tags in [bilou, bio] {
            let s = TagSet::from_tags(tags.clone());
            let path: Vec<usize> = (0..tags.len()).collect();
            let mut sorted = spans.clone();
            sorted.sort();
            let mut got = s.decode(&tokens, &path);
            got.sort();
            assert_eq!(got, sorted);
        }
        // Two one-token entities of one label side by side stay two in BILOU.
        let s = set(&["U-A", "U-A", "B-A", "L-A", "L-A"]);
        let tokens = corpus::tokenize("a b c d e");
        let got: Vec<(usize, usize)> = s.decode(&tokens, &[0, 1, 2, 3, 4]).iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(got, [(0, 1), (2, 3), (4, 7), (8, 9)], "a stray L- starts an entity of its own");
        // In BIO, I- after B- of one label continues; B- after B- starts a new one.
        let bio = set(&["O", "B-A", "I-A"]);
        assert!(bio.allowed(Some(1), 2) && !bio.allowed(Some(0), 2) && bio.allowed(Some(1), 1));
        assert!(!set(&["O", "B-A", "I-A", "L-A", "U-A"]).allowed(Some(1), 0), "BILOU: B- must be continued");
    }

    #[test]
    fn encode_and_decode_round_trip() {
        let text = "Ana Gil, 28 28 70973";
        let tokens = corpus::tokenize(text);
        let spans = vec![Span::new(0, 7, "NOMBRE"), Span::new(9, 11, "EDAD"), Span::new(12, 14, "EDAD")];
        let s = TagSet::from_types(["EDAD", "NOMBRE", "ZIP"], TagScheme::Bio);
        let tags = s.encode(&tokens, &spans);
        assert_eq!(s.decode(&tokens, &tags), spans);
        // Unknown types stay O.
        assert!(s.encode(&tokens, &[Span::new(15, 20, "OTHER")]).iter().all(|&t| t == 0));
    }

    #[test]
    fn transition_log_probs_prefer_what_the_corpus_does() {
        let d = Document { id: "d".into(), text: "Ana Gil y Luis Vera".into(), spans: vec![Span::new(0, 7, "N"), Span::new(10, 19, "N")] };
        let s = TagSet::from_types(["N"], TagScheme::Bio);
        let t = s.transition_log_probs(&[d]);
        let k = s.len();
        // B-N → I-N (seen twice) beats B-N → B-N (never seen).
        assert!(t[k + 2] > t[k + 1]);
        assert_eq!(t[2], -1e4, "O → I-N is forbidden");
    }

    #[test]
    fn viterbi_never_outputs_invalid_bio() {
        let l = TagSet::from_types(["A", "B", "C"], TagScheme::Bio);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let n = rng.random_range(1..12);
            // Random scores that often favour I- tags, to tempt invalid transitions.
            let em: Vec<Vec<f32>> = (0..n).map(|_| (0..l.len()).map(|_| rng.random::<f32>() * 5.0).collect()).collect();
            let path = l.viterbi_rows(&em, None);
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
        assert_eq!(l.viterbi_rows(&em, None), vec![ia - 1, ia]);
    }

    #[test]
    fn the_transition_prior_joins_look_alike_tokens_into_one_entity() {
        let labels = TagSet::from_types(["ID"], TagScheme::Bio);
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
        assert_eq!(labels.viterbi_rows(&emissions, None), [b, b, b]);
        assert_eq!(labels.viterbi_rows(&emissions, Some(&t)), [b, i, i]);
    }
}
