//! `ner::augmented` with a user's label map (`augment.labels`, `--labels`): a label the built-in
//! map does not know gets surrogates of the kind the user's map gives it, instead of other
//! mentions of the same label.

use corpus::{Document, Span};

fn doc(id: &str, date: &str) -> Document {
    let text = format!("Ingresa el {date} por dolor abdominal.");
    let start = "Ingresa el ".chars().count();
    let mut d = Document::new(id, text);
    d.spans.push(Span::new(start, start + date.chars().count(), "Q00"));
    d
}

fn q00_mentions(docs: &[Document]) -> Vec<String> {
    docs.iter().flat_map(|d| d.spans.iter().map(|s| d.text.chars().skip(s.start).take(s.end - s.start).collect::<String>())).collect()
}

#[test]
fn a_label_map_gives_an_opaque_label_its_surrogate_kind() {
    let train = vec![doc("a", "12/03/2017"), doc("b", "05/05/2015")];
    let originals = q00_mentions(&train);
    let lang = Some(lang::Language::Es);

    // Without a map entry, Q00 (no kind guessed from its name) gets other mentions of Q00.
    let plain = ner::augmented(&train, 3, 7, lang, &deid::LabelMap::meddocan(), deid::SurrogateSource::Lists).unwrap();
    assert_eq!(plain.len(), 8);
    assert!(q00_mentions(&plain[2..]).iter().all(|m| originals.contains(m)));

    // With `Q00 = "date"`, the copies hold other dates, never an original.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.toml");
    std::fs::write(&path, "[labels]\nQ00 = \"date\"\n").unwrap();
    let section = ner::config::AugmentSection { copies: Some(3), labels: Some(path), ..Default::default() };
    let dated = ner::augmented(&train, 3, 7, lang, &section.label_map().unwrap(), section.surrogates).unwrap();
    let copies = q00_mentions(&dated[2..]);
    assert_eq!(copies.len(), 6);
    for m in &copies {
        assert!(!originals.contains(m), "a copy kept an original date");
        assert!(m.chars().filter(|c| c.is_ascii_digit()).count() == 8 && m.matches('/').count() == 2, "not a date in the original's format");
    }

    // A missing map is an error that names the setting and the file.
    let missing = ner::config::AugmentSection { copies: Some(1), labels: Some(dir.path().join("nope.toml")), ..Default::default() };
    let err = missing.label_map().unwrap_err().to_string();
    assert!(err.contains("augment.labels") && err.contains("nope.toml"), "{err}");
}
