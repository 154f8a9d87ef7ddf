//! Token-level scores: each word token of the gold text carries one label (or `O`) per side.

use corpus::{Span, Token};

use crate::Tally;

/// Scores one document's tokens (rules on [`crate::evaluate`]).
pub(crate) fn score(tokens: &[Token], gold: &[Span], pred: &[Span], tally: &mut Tally) {
    let g = token_labels(tokens, gold);
    let p = token_labels(tokens, pred);
    for (g, p) in g.into_iter().zip(p) {
        match (g, p) {
            (Some(a), Some(b)) if a == b => tally.tp(a),
            (g, p) => {
                if let Some(a) = g {
                    tally.fn_(a);
                }
                if let Some(b) = p {
                    tally.fp(b);
                }
            }
        }
    }
}

/// The label of each token: that of the shortest span containing it entirely (then the earliest,
/// then the alphabetically first label), `None` for `O`.
///
/// Tokens are sorted and disjoint, so the tokens inside a span are a contiguous run starting at
/// the first token that starts at or after the span: a binary search and a short walk per span.
pub(crate) fn token_labels<'a>(tokens: &[Token], spans: &'a [Span]) -> Vec<Option<&'a str>> {
    let mut best: Vec<Option<(usize, usize, &'a str)>> = vec![None; tokens.len()];
    for s in spans {
        let key = (s.end.saturating_sub(s.start), s.start, s.label.as_str());
        let first = tokens.partition_point(|t| t.start < s.start);
        for (slot, _) in best[first..].iter_mut().zip(&tokens[first..]).take_while(|(_, t)| t.end <= s.end) {
            if slot.is_none_or(|b| key < b) {
                *slot = Some(key);
            }
        }
    }
    best.into_iter().map(|b| b.map(|(_, _, label)| label)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_take_the_label_of_the_innermost_containing_span() {
        // "Dr Juan Pérez, 45 años": tokens Dr Juan Pérez , 45 años
        let text = "Dr Juan Pérez, 45 años";
        let tokens = corpus::tokenize(text);
        assert_eq!(tokens.len(), 6);
        let spans = vec![
            Span::new(3, 13, "NOMBRE"),  // Juan Pérez
            Span::new(8, 13, "APELLIDO"), // Pérez: shorter, wins that token
            Span::new(15, 19, "EDAD"),    // "45 a": cuts "años", which stays O
        ];
        assert_eq!(
            token_labels(&tokens, &spans),
            [None, Some("NOMBRE"), Some("APELLIDO"), None, Some("EDAD"), None]
        );
        // Equal spans: the alphabetically first label.
        let tie = vec![Span::new(3, 7, "B"), Span::new(3, 7, "A")];
        assert_eq!(token_labels(&tokens, &tie)[1], Some("A"));
        // Out-of-range and empty spans label nothing.
        let odd = vec![Span::new(100, 120, "X"), Span::new(5, 5, "X"), Span::new(9, 4, "X")];
        assert!(token_labels(&tokens, &odd).iter().all(Option::is_none));
    }
}
