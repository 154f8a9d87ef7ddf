//! Majority vote of several taggers' spans: an ensemble's prediction from its members'.

use anyhow::{ensure, Result};
use corpus::{Document, Span};

/// The spans most members agree on, character by character: a character gets the label more than
/// half of the members give it (else none), and an entity starts where the label changes or where
/// more than half of the members start one of that label. Edges are trimmed of whitespace. Each
/// entry of `members` is one member's prediction of the same documents in the same order.
pub fn majority(members: &[Vec<Document>]) -> Result<Vec<Document>> {
    ensure!(!members.is_empty(), "a vote needs at least one member's predictions");
    let n = members.len();
    let docs = &members[0];
    for m in members {
        ensure!(m.len() == docs.len(), "ensemble members predicted {} and {} documents", docs.len(), m.len());
    }
    let mut out = Vec::with_capacity(docs.len());
    for (i, d) in docs.iter().enumerate() {
        let chars: Vec<char> = d.text.chars().collect();
        // Per member, per character: the index of the covering span.
        let mut cover: Vec<Vec<Option<&Span>>> = Vec::with_capacity(n);
        for m in members {
            let md = &m[i];
            ensure!(md.id == d.id, "ensemble members predicted documents in different orders ({} and {})", d.id, md.id);
            let mut c = vec![None; chars.len()];
            for s in &md.spans {
                for slot in c.iter_mut().take(s.end.min(chars.len())).skip(s.start) {
                    *slot = Some(s);
                }
            }
            cover.push(c);
        }
        let mut spans: Vec<Span> = Vec::new();
        let mut open: Option<Span> = None;
        for p in 0..chars.len() {
            // The label with a strict majority at this character, if any.
            let mut winner: Option<&str> = None;
            for c in &cover {
                if let Some(s) = c[p] {
                    if cover.iter().filter(|o| o[p].is_some_and(|t| t.label == s.label)).count() * 2 > n {
                        winner = Some(&s.label);
                        break;
                    }
                }
            }
            let Some(label) = winner else {
                spans.extend(open.take());
                continue;
            };
            let starts = cover.iter().filter(|c| c[p].is_some_and(|s| s.label == label && s.start == p)).count();
            match &mut open {
                Some(o) if o.label == label && starts * 2 <= n => o.end = p + 1,
                _ => {
                    spans.extend(open.take());
                    open = Some(Span::new(p, p + 1, label));
                }
            }
        }
        spans.extend(open);
        let spans = spans
            .into_iter()
            .filter_map(|mut s| {
                while s.end > s.start && chars[s.end - 1].is_whitespace() {
                    s.end -= 1;
                }
                while s.start < s.end && chars[s.start].is_whitespace() {
                    s.start += 1;
                }
                (s.end > s.start).then_some(s)
            })
            .collect();
        out.push(Document { spans, ..d.clone() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(spans: &[(usize, usize, &str)]) -> Document {
        let mut d = Document::new("d", "Ana Ruiz vive en Madrid y Sevilla");
        d.spans = spans.iter().map(|&(s, e, l)| Span::new(s, e, l)).collect();
        d
    }

    fn vote(members: &[&[(usize, usize, &str)]]) -> Vec<(usize, usize, String)> {
        let preds: Vec<Vec<Document>> = members.iter().map(|m| vec![doc(m)]).collect();
        majority(&preds).unwrap()[0].spans.iter().map(|s| (s.start, s.end, s.label.clone())).collect()
    }

    #[test]
    fn keeps_what_a_majority_says_and_drops_the_rest() {
        let name = (0, 8, "NAME");
        let city = (17, 23, "CITY");
        // One member alone finds Sevilla; two of three find the name and Madrid.
        let got = vote(&[&[name, city], &[name, (26, 33, "CITY")], &[city]]);
        assert_eq!(got, vec![(0, 8, "NAME".into()), (17, 23, "CITY".into())]);
        // A label split 1-1-1 is no majority.
        assert_eq!(vote(&[&[(0, 8, "A")], &[(0, 8, "B")], &[(0, 8, "C")]]), vec![]);
        // Unanimous members give their spans back exactly; a lone member is its own vote.
        assert_eq!(vote(&[&[name, city], &[name, city]]), vote(&[&[name, city]]));
    }

    #[test]
    fn edges_follow_the_majority() {
        // "Madrid y Sevilla" as one span by one member, two spans by two: two spans.
        let got = vote(&[&[(17, 33, "CITY")], &[(17, 23, "CITY"), (26, 33, "CITY")], &[(17, 23, "CITY"), (26, 33, "CITY")]]);
        assert_eq!(got, vec![(17, 23, "CITY".into()), (26, 33, "CITY".into())]);
        // Two members start a name at "Ruiz": the majority splits "Ana Ruiz" in two; the
        // whitespace between is nobody's and is trimmed.
        let got = vote(&[&[(0, 3, "N"), (4, 8, "N")], &[(0, 3, "N"), (4, 8, "N")], &[(0, 8, "N")]]);
        assert_eq!(got, vec![(0, 3, "N".into()), (4, 8, "N".into())]);
        // Adjacent spans of one member stay apart when the others agree.
        let got = vote(&[&[(0, 8, "N")], &[(0, 3, "N"), (4, 8, "N")], &[(0, 8, "N")]]);
        assert_eq!(got, vec![(0, 8, "N".into())]);
    }

    #[test]
    fn refuses_members_that_disagree_on_the_documents() {
        let a = vec![doc(&[])];
        assert!(majority(&[a.clone(), vec![]]).is_err());
        let mut b = a.clone();
        b[0].id = "other".into();
        assert!(majority(&[a, b]).is_err());
        assert!(majority(&[]).is_err());
    }
}
