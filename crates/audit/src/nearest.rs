use corpus::Document;
use serde::{Deserialize, Serialize};

/// The longest substring a synthetic document shares with any training document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NearestMatch {
    pub synthetic_id: String,
    pub training_id: String,
    /// Length in characters of the longest shared substring.
    pub length: usize,
    /// Its length as a share of the synthetic document.
    pub share_of_document: f64,
    pub synthetic_start: usize,
    pub training_start: usize,
}

#[derive(Clone)]
struct State {
    len: u32,
    link: i32,
    /// End position (in the concatenated text) of the first occurrence of this state's strings.
    first_end: u32,
    next: Vec<(char, u32)>,
}

/// A suffix automaton of all training texts (separated by a character that never matches), to
/// find the longest common substring with any text in time linear in that text.
pub struct SuffixAutomaton {
    states: Vec<State>,
    /// Start offset of each training document in the concatenation, and its id.
    doc_starts: Vec<(usize, String)>,
}

const SEPARATOR: char = '\u{0}';

impl SuffixAutomaton {
    pub fn new(training: &[Document]) -> Self {
        let total: usize = training.iter().map(|d| d.text.len() + 1).sum();
        let mut sa = SuffixAutomaton {
            states: Vec::with_capacity(2 * total + 2),
            doc_starts: Vec::with_capacity(training.len()),
        };
        sa.states.push(State { len: 0, link: -1, first_end: 0, next: Vec::new() });
        let mut last = 0usize;
        let mut pos = 0usize;
        for d in training {
            sa.doc_starts.push((pos, d.id.clone()));
            for c in d.text.chars().chain(std::iter::once(SEPARATOR)) {
                last = sa.extend(last, c, pos);
                pos += 1;
            }
        }
        sa
    }

    fn go(&self, s: usize, c: char) -> Option<usize> {
        self.states[s].next.iter().find(|(k, _)| *k == c).map(|(_, t)| *t as usize)
    }

    fn extend(&mut self, last: usize, c: char, pos: usize) -> usize {
        let cur = self.states.len();
        self.states.push(State { len: self.states[last].len + 1, link: -1, first_end: pos as u32, next: Vec::new() });
        let mut p = last as i32;
        while p >= 0 && self.go(p as usize, c).is_none() {
            self.states[p as usize].next.push((c, cur as u32));
            p = self.states[p as usize].link;
        }
        if p < 0 {
            self.states[cur].link = 0;
        } else {
            let q = self.go(p as usize, c).expect("transition exists");
            if self.states[p as usize].len + 1 == self.states[q].len {
                self.states[cur].link = q as i32;
            } else {
                let clone = self.states.len();
                let mut st = self.states[q].clone();
                st.len = self.states[p as usize].len + 1;
                self.states.push(st);
                while p >= 0 && self.go(p as usize, c) == Some(q) {
                    let slot = self.states[p as usize].next.iter_mut().find(|(k, _)| *k == c).expect("transition exists");
                    slot.1 = clone as u32;
                    p = self.states[p as usize].link;
                }
                self.states[q].link = clone as i32;
                self.states[cur].link = clone as i32;
            }
        }
        cur
    }

    /// Longest substring of `text` occurring in the training texts: `(length, start in text,
    /// training document index, start in that document)`, all in characters.
    pub fn longest_common(&self, text: &str) -> Option<(usize, usize, usize, usize)> {
        let (mut v, mut l) = (0usize, 0usize);
        let mut best: Option<(usize, usize, usize)> = None; // (len, end in text, state)
        for (i, c) in text.chars().enumerate() {
            if c == SEPARATOR {
                v = 0;
                l = 0;
                continue;
            }
            while v != 0 && self.go(v, c).is_none() {
                v = self.states[v].link as usize;
                l = self.states[v].len as usize;
            }
            if let Some(t) = self.go(v, c) {
                v = t;
                l += 1;
            } else {
                v = 0;
                l = 0;
            }
            if l > 0 && best.is_none_or(|(bl, _, _)| l > bl) {
                best = Some((l, i, v));
            }
        }
        best.map(|(len, end, state)| {
            let train_end = self.states[state].first_end as usize; // inclusive end in the concatenation
            let train_start = train_end + 1 - len;
            let doc = self.doc_starts.partition_point(|(s, _)| *s <= train_start) - 1;
            (len, end + 1 - len, doc, train_start - self.doc_starts[doc].0)
        })
    }

    pub fn document_id(&self, index: usize) -> &str {
        &self.doc_starts[index].1
    }
}

/// The `k` synthetic documents sharing the longest substrings with training documents, longest
/// first (ties: by synthetic id).
pub fn nearest_documents(automaton: &SuffixAutomaton, synthetic: &[Document], k: usize) -> Vec<NearestMatch> {
    let mut all: Vec<NearestMatch> = synthetic
        .iter()
        .filter_map(|d| {
            automaton.longest_common(&d.text).map(|(length, s_start, doc, t_start)| NearestMatch {
                synthetic_id: d.id.clone(),
                training_id: automaton.document_id(doc).to_string(),
                length,
                share_of_document: length as f64 / d.char_len().max(1) as f64,
                synthetic_start: s_start,
                training_start: t_start,
            })
        })
        .collect();
    all.sort_by(|a, b| b.length.cmp(&a.length).then(a.synthetic_id.cmp(&b.synthetic_id)));
    all.truncate(k);
    all
}
