//! Surrogate augmentation: each annotated document rewritten into new copies with other names,
//! dates, places and numbers (its spans kept, moved to the new text), so that a tagger trained on
//! few documents sees each context with many fillers instead of memorising one.

use corpus::split::COPY_MARK;
use corpus::Document;

use crate::{deidentify_corpus, DeidError, LabelMap, Language, Mode, Options};

/// `copies` surrogate rewrites of every document of `docs`, copy by copy (`{id}~copy1` for each
/// document, then `~copy2`, …), not including the originals. Each copy draws from its own key
/// derived from `seed` (same seed, same copies) and never reproduces an original PHI string of
/// `docs`. Labels missing from `labels` get a kind guessed from their name (`LabelMap::effective_kind`).
pub fn surrogate_copies(docs: &[Document], copies: usize, seed: u64, language: Language, labels: &LabelMap) -> Result<Vec<Document>, DeidError> {
    let mut out = Vec::with_capacity(docs.len() * copies);
    for c in 1..=copies {
        // Distinct seeds per copy; the multiplier keeps seed s copy 2 away from seed s + 1 copy 1.
        let options = Options { labels: labels.clone(), ..Options::default() }
            .with_seed(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(c as u64))
            .with_language(language);
        let (rewritten, _, _) = deidentify_corpus(docs, Mode::Surrogate, &options)?;
        out.extend(rewritten.into_iter().map(|mut d| {
            d.id = format!("{}{COPY_MARK}{c}", d.id);
            d
        }));
    }
    Ok(out)
}

/// How many copies to add to a corpus of `documents` gold documents when the user does not say:
/// enough to bring small corpora towards 500 documents' worth, at most 8 (each copy costs its
/// training time again), none from 251 documents on.
pub fn auto_copies(documents: usize) -> usize {
    (500 / documents.max(1)).saturating_sub(1).min(8)
}

/// The surrogate vocabulary for text in `language`: its own where deid has one, else English's.
pub fn surrogate_language(language: lang::Language) -> Language {
    match language {
        lang::Language::Es => Language::Es,
        lang::Language::Sv => Language::Sv,
        lang::Language::De => Language::De,
        _ => Language::En,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corpus::Span;

    fn doc() -> Document {
        let text = "Paciente: Juan García López, 45 años. Ingreso el 12/03/2019 en Madrid.";
        let span = |s: &str, label: &str| {
            let start = text[..text.find(s).unwrap()].chars().count();
            Span::new(start, start + s.chars().count(), label)
        };
        Document {
            id: "d1".into(),
            text: text.into(),
            spans: vec![span("Juan García López", "NOMBRE_SUJETO_ASISTENCIA"), span("12/03/2019", "FECHAS"), span("Madrid", "TERRITORIO")],
        }
    }

    #[test]
    fn auto_copies_fall_with_corpus_size() {
        let got: Vec<usize> = [1, 25, 50, 100, 125, 200, 250, 251, 475, 5000].iter().map(|&n| auto_copies(n)).collect();
        assert_eq!(got, [8, 8, 8, 4, 3, 1, 1, 0, 0, 0]);
    }

    #[test]
    fn copies_keep_labels_and_context_change_fillers_and_are_seeded() {
        let d = doc();
        let a = surrogate_copies(std::slice::from_ref(&d), 3, 7, Language::Es, &LabelMap::meddocan()).unwrap();
        assert_eq!(a.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d1~copy1", "d1~copy2", "d1~copy3"]);
        for c in &a {
            assert_eq!(c.spans.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), d.spans.iter().map(|s| s.label.as_str()).collect::<Vec<_>>());
            assert!(c.text.starts_with("Paciente: ") && c.text.contains(" años. Ingreso el "));
            for (s, o) in c.spans.iter().zip(&d.spans) {
                let new: String = c.text.chars().skip(s.start).take(s.end - s.start).collect();
                let old: String = d.text.chars().skip(o.start).take(o.end - o.start).collect();
                assert_ne!(new, old, "a copy kept an original PHI string");
            }
        }
        assert_ne!(a[0].text, a[1].text);
        assert_eq!(a, surrogate_copies(&[d.clone()], 3, 7, Language::Es, &LabelMap::meddocan()).unwrap());
        assert_ne!(a, surrogate_copies(&[d], 3, 8, Language::Es, &LabelMap::meddocan()).unwrap());
    }
}
