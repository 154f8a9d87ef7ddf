//! Cutting a document into windows of N word tokens (the paper uses 128) whose offsets map back
//! into the document.

use crate::Token;

/// A window over a token sequence: tokens `[token_start, token_end)`, which cover characters
/// `[char_start, char_end)` of the document (from the first token's start to the last one's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub token_start: usize,
    pub token_end: usize,
    pub char_start: usize,
    pub char_end: usize,
}

/// Windows of at most `size` tokens; each starts `stride` tokens after the previous one
/// (`stride == size`: no overlap; `stride < size`: overlapping windows, for prediction that gives
/// every token some context on both sides). The last window ends at the last token; every token is
/// in at least one window. A document without tokens has no windows.
pub fn windows(tokens: &[Token], size: usize, stride: usize) -> Vec<Window> {
    assert!(size > 0, "window size must be at least 1");
    let stride = stride.clamp(1, size);
    let n = tokens.len();
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + size).min(n);
        out.push(Window {
            token_start: start,
            token_end: end,
            char_start: tokens[start].start,
            char_end: tokens[end - 1].end,
        });
        if end == n {
            break;
        }
        start += stride;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize;

    #[test]
    fn windows_cover_every_token_and_map_back() {
        let text = "uno dos tres cuatro cinco seis siete";
        let toks = tokenize(text);
        let ws = windows(&toks, 3, 3);
        assert_eq!(ws.len(), 3);
        assert_eq!(&text[ws[1].char_start..ws[1].char_end], "cuatro cinco seis");
        assert_eq!(ws[2].token_end, toks.len());
        let ws = windows(&toks, 4, 2);
        assert_eq!(ws.iter().map(|w| (w.token_start, w.token_end)).collect::<Vec<_>>(), [(0, 4), (2, 6), (4, 7)]);
        assert!(windows(&[], 128, 128).is_empty());
    }
}
