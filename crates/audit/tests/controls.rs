//! The membership-inference attacks validated on MEDDOCAN (`../shared/data/meddocan`, present in
//! CI): a "synthetic" corpus that is the training documents themselves must be caught (AUC near
//! 1), and one of real documents the generator never saw must not (AUC near 0.5).

use corpus::{read_corpus, Document, ReadOptions};
use std::path::PathBuf;

fn split(name: &str) -> Vec<Document> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/meddocan").join(name);
    assert!(p.is_dir(), "{} is missing: this test needs the shared MEDDOCAN corpus", p.display());
    read_corpus(&p, None, &ReadOptions::default()).unwrap()
}

#[test]
fn attacks_catch_a_copying_corpus_and_not_real_unseen_text() {
    let (train, dev, test) = (split("train"), split("dev"), split("test"));
    let members = &train[..200];
    let non_members = &test[..200];
    let copying = audit::membership_inference(members, members, non_members, 5, 50, 1);
    let unseen = audit::membership_inference(&dev, members, non_members, 5, 50, 1);
    for (a, b) in copying.attacks.iter().zip(&unseen.attacks) {
        assert!(a.auc > 0.99 && a.tpr_at_1pct_fpr > 0.9, "positive control, {}: {a:?}", a.name);
        assert!((b.auc - 0.5).abs() < 0.1 && b.auc_low < 0.5 + 0.02 && b.auc_high > 0.5 - 0.02, "negative control, {}: {b:?}", b.name);
    }
    // Template-aware recall: the form's shared n-grams removed, real unseen text overlaps less.
    let raw = audit::ngram_recall(&dev, &train, 5).unwrap();
    let clean = audit::ngram_recall_without_templates(&dev, &train, 5, 0.1).unwrap();
    assert!(clean.recall < raw.recall && clean.total < raw.total, "{raw:?} {clean:?}");
}
