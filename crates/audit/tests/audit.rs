use audit::*;
use corpus::{Document, Span};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn doc(id: &str, text: &str, spans: &[(usize, usize, &str)]) -> Document {
    Document { id: id.into(), text: text.into(), spans: spans.iter().map(|&(s, e, l)| Span::new(s, e, l)).collect() }
}

#[test]
fn ngram_recall_counts_occurrences_and_distinct() {
    let train = [doc("t", "a b c d e f", &[])];
    let syn = [doc("s1", "a b c d e f g", &[]), doc("s2", "x y z", &[])];
    let r = ngram_recall(&syn, &train, 5).unwrap();
    // s1 has 3 five-grams: (a..e) and (b..f) occur, (c..g) does not; s2 has none.
    assert_eq!((r.total, r.found), (3, 2));
    assert!((r.recall - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(ngram_recall(&[], &train, 5).unwrap().recall, 0.0);
}

#[test]
fn leaked_phi_needs_word_boundaries_and_counts_per_label() {
    let train = [doc("t", "Paciente Ana Ruiz, sexo M, NHC 12345.", &[(9, 17, "NOMBRE"), (24, 25, "SEXO"), (31, 36, "ID")])];
    let syn = [doc("s", "Vino Ana Ruiz con Marta; NHC 123456.", &[])];
    let l = leaked_phi(&train, &syn);
    assert_eq!(l.per_label["NOMBRE"].leaked, 1);
    assert_eq!(l.per_label["SEXO"].leaked, 0, "M inside Marta is not a leak");
    assert_eq!(l.per_label["ID"].leaked, 0, "12345 inside 123456 is not a leak");
    assert_eq!((l.distinct, l.leaked), (3, 1));
    assert_eq!((l.unique, l.unique_leaked), (3, 1), "every string is in one training document");
    // A string in two training documents is common, not unique.
    let train2 = [train[0].clone(), Document { id: "t2".into(), ..train[0].clone() }];
    let l2 = leaked_phi(&train2, &syn);
    assert_eq!((l2.unique, l2.unique_leaked), (0, 0));
}

/// Brute-force longest common substring, to check the suffix automaton.
fn brute_lcs(a: &[char], b: &[char]) -> usize {
    let mut best = 0;
    let mut prev = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        let mut cur = vec![0usize; b.len() + 1];
        for j in 1..=b.len() {
            if a[i - 1] == b[j - 1] {
                cur[j] = prev[j - 1] + 1;
                best = best.max(cur[j]);
            }
        }
        prev = cur;
    }
    best
}

#[test]
fn suffix_automaton_finds_the_longest_shared_substring() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let alphabet = ['a', 'b', 'c', 'ñ', ' '];
    for _ in 0..200 {
        let mk = |rng: &mut ChaCha8Rng, n: usize| -> String { (0..n).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect() };
        let train: Vec<Document> = (0..3).map(|i| doc(&format!("t{i}"), &mk(&mut rng, 30), &[])).collect();
        let syn = mk(&mut rng, 25);
        let sa = SuffixAutomaton::new(&train);
        let (len, s_start, d, t_start) = sa.longest_common(&syn).unwrap();
        let sc: Vec<char> = syn.chars().collect();
        let expected = train.iter().map(|t| brute_lcs(&sc, &t.text.chars().collect::<Vec<_>>())).max().unwrap();
        assert_eq!(len, expected);
        // The reported positions really hold the same substring.
        let tc: Vec<char> = train[d].text.chars().collect();
        assert_eq!(sc[s_start..s_start + len], tc[t_start..t_start + len]);
    }
}

#[test]
fn audit_reports_copies_and_hides_text_unless_asked() {
    let train = [doc("t1", "Nombre: Ana Ruiz. Vive en Cuenca.", &[(8, 16, "NOMBRE"), (26, 32, "TERRITORIO")])];
    let syn = [doc("copy", "Nombre: Ana Ruiz. Vive en Soria.", &[]), doc("new", "Otro texto distinto.", &[])];
    let r = audit(&syn, &train, None, &AuditConfig::default());
    assert_eq!(r.nearest[0].synthetic_id, "copy");
    assert_eq!(r.nearest[0].length, "Nombre: Ana Ruiz. Vive en ".chars().count());
    assert!(r.examples.is_empty());
    let r = audit(&syn, &train, None, &AuditConfig { show_examples: 1, ..Default::default() });
    assert_eq!(r.examples[0].shared, "Nombre: Ana Ruiz. Vive en ");
}

/// Issue 25, case 3: an n-gram order of 0 panicked (`assert!` in ngram.rs); now an error.
#[test]
fn issue25_case3_ngram_order_zero_is_an_error_not_a_panic() {
    let train = [doc("t", "a b c", &[])];
    let e = ngram_recall(&train, &train, 0).unwrap_err();
    assert!(e.contains("at least 1"), "{e}");
    let cfg = AuditConfig { ngram: 0, ..Default::default() };
    assert!(cfg.check().unwrap_err().starts_with("ngram = 0"));
    assert!(try_audit(&train, &train, Some(&train), &cfg).unwrap_err().starts_with("ngram = 0"));
    assert!(try_audit(&train, &train, None, &AuditConfig::default()).is_ok());
}
