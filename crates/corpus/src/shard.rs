//! Shards of a stage's input: `--shard I/N` picks the I-th of N contiguous, near-equal runs of
//! documents (by position), and [`merge`] joins the N outputs back in the unsharded order.
//!
//! Contiguous runs, not every N-th document: then the merge is a concatenation in shard order, so
//! shard outputs in any format (a JSONL file, a directory) join without knowing how many documents
//! each shard held, and a stage whose output for a document depends only on that document (and on
//! seeds derived from its id) gives, sharded and merged, the unsharded output byte for byte.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::Document;

/// Shard `index` of `count` (0-based): `"0/3"`, `"1/3"`, `"2/3"` cover an input once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole input (`0/1`).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; `index < count`, `count ≥ 1`.
    pub fn new(index: usize, count: usize) -> Result<Shard, String> {
        if count == 0 {
            return Err("a shard count N of I/N must be at least 1".into());
        }
        if index >= count {
            return Err(format!("shard {index}/{count}: the index I of I/N counts from 0 and must be below N (0/{count} … {}/{count})", count - 1));
        }
        Ok(Shard { index, count })
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Positions of this shard among `len` items: `[index·len/N, (index+1)·len/N)`. The N ranges
    /// are disjoint, cover `0..len` in order, and differ in length by at most one.
    pub fn range(&self, len: usize) -> Range<usize> {
        let at = |i: usize| (i as u128 * len as u128 / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }

    /// This shard's items.
    pub fn select<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        &items[self.range(items.len())]
    }

    /// Every shard of `count`, in order.
    pub fn all(count: usize) -> impl Iterator<Item = Shard> {
        (0..count).map(move |index| Shard { index, count })
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `"I/N"`, e.g. `"0/3"`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("{s:?} is not a shard: write I/N, e.g. 0/3 for the first of three (I counts from 0)");
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let i: usize = i.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

/// Joins shard outputs given in shard order (`parts[i]` from shard `i/N`): the unsharded order.
pub fn merge<T>(parts: Vec<Vec<T>>) -> Vec<T> {
    parts.into_iter().flatten().collect()
}

/// [`merge`] for documents, refusing a document id that two parts share (a part given twice, or
/// outputs of different runs): the error names the id's position, never document text.
pub fn merge_documents(parts: Vec<Vec<Document>>) -> Result<Vec<Document>, String> {
    let mut seen = std::collections::HashMap::new();
    for (p, docs) in parts.iter().enumerate() {
        for d in docs {
            if let Some(q) = seen.insert(d.id.as_str(), p) {
                return Err(format!(
                    "document id {:?} is in part {} and in part {}: each document must come from one shard (a part given twice?)",
                    d.id,
                    q + 1,
                    p + 1
                ));
            }
        }
    }
    Ok(merge(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        assert_eq!(s.to_string(), "1/3");
        assert_eq!(" 0 / 1 ".parse::<Shard>().unwrap(), Shard::WHOLE);
        for bad in ["3/3", "1/0", "1", "a/3", "-1/3", "1/3/4", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad:?} parsed");
        }
        assert!("3/3".parse::<Shard>().unwrap_err().contains("below N"));
    }

    #[test]
    fn shards_cover_the_input_once_in_order_and_merge_back() {
        for len in 0..40usize {
            for n in 1..8usize {
                let items: Vec<usize> = (0..len).collect();
                let parts: Vec<Vec<usize>> = Shard::all(n).map(|s| s.select(&items).to_vec()).collect();
                let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "len {len}, n {n}: {sizes:?}");
                assert_eq!(merge(parts), items, "len {len}, n {n}");
            }
        }
    }

    #[test]
    fn merge_documents_refuses_a_part_given_twice() {
        let a = vec![Document::new("a", "x"), Document::new("b", "y")];
        assert_eq!(merge_documents(vec![a.clone(), vec![Document::new("c", "z")]]).unwrap().len(), 3);
        let e = merge_documents(vec![a.clone(), a]).unwrap_err();
        assert!(e.contains("\"a\"") && e.contains("part 1 and in part 2"), "{e}");
    }
}
