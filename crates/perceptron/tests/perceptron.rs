use corpus::{Document, Span};
use perceptron::{train, train_stacked_with_out_of_fold, Perceptron, PerceptronConfig, FEATURE_SET};
use progress::Silent;

fn doc(id: &str, text: &str, spans: &[(&str, &str)]) -> Document {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    for (s, label) in spans {
        let sc: Vec<char> = s.chars().collect();
        let start = (0..chars.len()).find(|&i| chars[i..].starts_with(&sc)).unwrap();
        out.push(Span::new(start, start + sc.len(), *label));
    }
    Document { id: id.into(), text: text.into(), spans: out }
}

fn docs() -> Vec<Document> {
    vec![
        doc("a", "Nombre: Ana García.\nNHC: 12345.\nVive en Madrid.", &[("Ana García", "NOMBRE"), ("12345", "ID"), ("Madrid", "TERRITORIO")]),
        doc("b", "Nombre: Luis Pérez Gil.\nNHC: 99881.\nVive en Soria.", &[("Luis Pérez Gil", "NOMBRE"), ("99881", "ID"), ("Soria", "TERRITORIO")]),
        doc("c", "Nombre: Eva Ruiz.\nNHC: 55120.\nVive en Cuenca.", &[("Eva Ruiz", "NOMBRE"), ("55120", "ID"), ("Cuenca", "TERRITORIO")]),
    ]
}

#[test]
fn learns_training_documents_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let d = docs();
    let (model, summary) = train(&PerceptronConfig { epochs: 10, ..Default::default() }, &d, &d, Some(tmp.path()), &Silent).unwrap();
    assert_eq!(summary.dev_token_f1.iter().cloned().fold(0.0, f64::max), 1.0);
    let pred = model.predict(&d);
    for (p, g) in pred.iter().zip(&d) {
        assert_eq!(p.spans, g.spans, "{}", g.id);
    }
    let loaded = Perceptron::load(tmp.path()).unwrap();
    assert_eq!(loaded.predict(&d), pred);
    // Same seed, same model.
    let (again, _) = train(&PerceptronConfig { epochs: 10, ..Default::default() }, &d, &d, None, &Silent).unwrap();
    assert_eq!(again.predict(&d), pred);
}

/// A tagger keeps the features it was trained on: one saved before taggers recorded their
/// feature set loads as set 1, and one from a newer feature set than this build knows is refused.
#[test]
fn saved_taggers_keep_their_feature_set() {
    let tmp = tempfile::tempdir().unwrap();
    let d = docs();
    let (model, _) = train(&PerceptronConfig { epochs: 10, ..Default::default() }, &d, &d, Some(tmp.path()), &Silent).unwrap();
    assert_eq!(model.feature_set(), FEATURE_SET);
    assert_eq!(Perceptron::load(tmp.path()).unwrap().feature_set(), FEATURE_SET);
    let file = tmp.path().join("perceptron.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("feature_set").expect("the field is saved");
    std::fs::write(&file, json.to_string()).unwrap();
    let old = Perceptron::load(tmp.path()).unwrap();
    assert_eq!(old.feature_set(), 1);
    json["feature_set"] = serde_json::json!(FEATURE_SET + 1);
    std::fs::write(&file, json.to_string()).unwrap();
    let err = format!("{:#}", Perceptron::load(tmp.path()).unwrap_err());
    assert!(err.contains(&format!("feature set {}", FEATURE_SET + 1)) && err.contains("perceptron.json"), "{err}");
}

#[test]
fn generalises_to_a_new_name_in_a_known_slot() {
    let d = docs();
    let (model, _) = train(&PerceptronConfig { epochs: 10, ..Default::default() }, &d, &[], None, &Silent).unwrap();
    let new = doc("n", "Nombre: Marta Sanz.\nNHC: 77777.\nVive en Teruel.", &[]);
    let p = &model.predict(&[new])[0];
    let labels: Vec<&str> = p.spans.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["NOMBRE", "ID", "TERRITORIO"]);
}

/// Members train on different document orders and are averaged into one model, deterministically;
/// the `O` penalty is picked on dev among the fractions tried (and 0 without dev).
#[test]
fn members_average_deterministically_and_the_o_penalty_is_picked_on_dev() {
    let d = docs();
    let cfg = PerceptronConfig { epochs: 6, members: 3, ..Default::default() };
    let (a, sa) = train(&cfg, &d, &d, None, &Silent).unwrap();
    let (b, _) = train(&cfg, &d, &d, None, &Silent).unwrap();
    assert_eq!(sa.members, 3);
    assert_eq!(a.predict(&d), b.predict(&d), "same seed, same members, same model");
    assert_eq!(sa.ensemble_dev_f1, Some(1.0), "{sa:?}");
    assert_eq!(a.predict(&d).iter().map(|p| p.spans.clone()).collect::<Vec<_>>(), d.iter().map(|g| g.spans.clone()).collect::<Vec<_>>());
    // Scores of every tag for every token, in tag order; the argmax path without the penalty is
    // the prediction on these well-separated documents.
    let tokens = corpus::tokenize(&d[0].text);
    let scores = a.scores(&d[0], &tokens);
    assert_eq!(scores.len(), tokens.len());
    assert!(scores.iter().all(|r| r.len() == a.tags.len()));
    assert_eq!(a.transition_scores().len(), (a.tags.len() + 1) * a.tags.len());
    // The penalty: the fractions tried are recorded with their dev scores, and the one kept is
    // the best (the first among equals, so 0 on a dev set already at 1.0).
    assert_eq!(sa.o_penalty_dev_f1.first().map(|p| p.0), Some(0.0));
    assert!(sa.o_penalty_dev_f1.len() > 3);
    assert_eq!(sa.o_penalty, 0.0);
    let (_, no_dev) = train(&cfg, &d, &[], None, &Silent).unwrap();
    assert!(no_dev.o_penalty_dev_f1.is_empty() && no_dev.o_penalty == 0.0 && no_dev.ensemble_dev_f1.is_none());
}

/// Stacking: the first stage is kept in the model (and saved with it), the second stage has the
/// first stage's tag features on top of its own, and bad fold counts are refused.
#[test]
fn stacked_tagger_keeps_its_first_stage_and_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let d = docs();
    let cfg = PerceptronConfig { epochs: 8, stack_folds: 3, ..Default::default() };
    let (model, summary) = train(&cfg, &d, &d, Some(tmp.path()), &Silent).unwrap();
    let stage1 = summary.stage1.as_ref().expect("a first-stage summary");
    assert_eq!(summary.stack_folds, 3);
    assert!(model.is_stacked());
    assert!(summary.features > stage1.features, "second stage {} features, first {}", summary.features, stage1.features);
    let pred = model.predict(&d);
    for (p, g) in pred.iter().zip(&d) {
        assert_eq!(p.spans, g.spans, "{}", g.id);
    }
    let new = doc("n", "Nombre: Marta Sanz.\nNHC: 77777.\nVive en Teruel.", &[]);
    let labels: Vec<String> = model.predict(std::slice::from_ref(&new))[0].spans.iter().map(|s| s.label.clone()).collect();
    assert_eq!(labels, ["NOMBRE", "ID", "TERRITORIO"]);
    // The saved model carries its first stage: same predictions after loading.
    let loaded = Perceptron::load(tmp.path()).unwrap();
    assert_eq!(loaded.predict(std::slice::from_ref(&new)), model.predict(std::slice::from_ref(&new)));
    let (again, _) = train(&cfg, &d, &d, None, &Silent).unwrap();
    assert_eq!(again.predict(&[new]), loaded.predict(&[doc("n", "Nombre: Marta Sanz.\nNHC: 77777.\nVive en Teruel.", &[])]));
    // Same seed, same file, byte for byte (feature maps are saved in key order).
    let tmp2 = tempfile::tempdir().unwrap();
    again.save(tmp2.path()).unwrap();
    let read = |p: &std::path::Path| std::fs::read(p.join("perceptron.json")).unwrap();
    assert!(read(tmp.path()) == read(tmp2.path()), "two trainings with one seed saved different files");
    for bad in [1, 4] {
        let err = train(&PerceptronConfig { stack_folds: bad, ..cfg.clone() }, &d, &d, None, &Silent).unwrap_err().to_string();
        assert!(err.contains("stack_folds"), "{err}");
    }
}

/// A stacked tagger's out-of-fold predictions: every training document, in order, tagged by a
/// second stage that did not train on it (a label only one document has is then not predicted
/// there), while the kept tagger is the one `train` gives.
#[test]
fn stacked_out_of_fold_predictions_come_from_taggers_that_did_not_see_the_document() {
    let mut d = docs();
    d.push(doc("d", "Nombre: Rosa Vidal.\nNHC: 31415.\nVive en Lugo.", &[("Rosa Vidal", "NOMBRE"), ("31415", "ID"), ("Lugo", "TERRITORIO")]));
    d.push(doc("e", "Nombre: Juan Mora.\nNHC: 27182.\nVive en Ávila.", &[("Juan Mora", "NOMBRE"), ("27182", "ID"), ("Ávila", "TERRITORIO")]));
    let odd = "Nombre: Pilar Soto.\nNHC: 16180.\nIngresa en Clínica Ebro.";
    d.push(doc("z", odd, &[("Pilar Soto", "NOMBRE"), ("16180", "ID"), ("Clínica Ebro", "HOSPITAL")]));
    let cfg = PerceptronConfig { epochs: 8, stack_folds: 3, ..Default::default() };
    let (kept, summary, oof) = train_stacked_with_out_of_fold(&cfg, 3, &d, &d, &Silent).unwrap();
    assert!(kept.is_stacked() && summary.stage1.is_some());
    let ids: Vec<&str> = oof.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e", "z"]);
    assert!(oof.iter().zip(&d).all(|(p, g)| p.text == g.text));
    let has_hospital = |p: &Document| p.spans.iter().any(|s| s.label == "HOSPITAL");
    assert!(has_hospital(&kept.predict(&d[5..])[0]), "the kept tagger trained on z");
    assert!(!has_hospital(&oof[5]), "z's fold never saw a HOSPITAL");
    // The names of the other documents follow a pattern the folds did see.
    assert!(oof[..5].iter().all(|p| p.spans.iter().any(|s| s.label == "NOMBRE")));
    let (plain, _) = train(&cfg, &d, &d, None, &Silent).unwrap();
    let new = doc("n", "Nombre: Marta Sanz.\nNHC: 77777.\nVive en Teruel.", &[]);
    assert_eq!(kept.predict(std::slice::from_ref(&new)), plain.predict(&[new]));
    assert!(train_stacked_with_out_of_fold(&PerceptronConfig { stack_folds: 0, ..cfg.clone() }, 3, &d, &d, &Silent).is_err());
    // Out-of-fold results are matched back by id: a repeated id is refused, naming it.
    let mut twice = d.clone();
    twice[1].id = "a".into();
    let err = train_stacked_with_out_of_fold(&cfg, 3, &twice, &d, &Silent).unwrap_err().to_string();
    assert!(err.contains("\"a\" appears twice"), "{err}");
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + x.abs().max(y.abs())))
}

/// A committee (`feature_sets` with two entries) is its taggers decoded as one: its scores and
/// transitions are the first tagger's plus the second's times the ratio of their score scales,
/// each tagger is what training it alone gives (the i-th on seed + 1000·i and its own feature
/// set), and it saves and loads whole.
#[test]
fn committee_adds_its_taggers_scores_weighed_to_one_scale() {
    let tmp = tempfile::tempdir().unwrap();
    let d = docs();
    let cfg = PerceptronConfig { epochs: 6, feature_sets: vec![FEATURE_SET, 1], ..Default::default() };
    let (committee, summary) = train(&cfg, &d, &d, Some(tmp.path()), &Silent).unwrap();
    assert_eq!(committee.committee_size(), 2);
    assert_eq!(summary.committee.len(), 1);
    assert!(summary.committee_dev_token_f1.is_some());
    let (first, _) = train(&PerceptronConfig { epochs: 6, ..Default::default() }, &d, &d, None, &Silent).unwrap();
    let (second, _) = train(&PerceptronConfig { epochs: 6, feature_sets: vec![1], seed: 1042, ..Default::default() }, &d, &d, None, &Silent).unwrap();
    assert_eq!((first.feature_set(), second.feature_set()), (FEATURE_SET, 1));
    assert_eq!(first.committee_size(), 1);
    let w = first.margin_scale(&d) / second.margin_scale(&d);
    assert!(w.is_finite() && w > 0.0);
    for doc in &d {
        let tokens = corpus::tokenize(&doc.text);
        let (c, a, b) = (committee.scores(doc, &tokens), first.scores(doc, &tokens), second.scores(doc, &tokens));
        for ((c, a), b) in c.iter().zip(&a).zip(&b) {
            let sum: Vec<f32> = a.iter().zip(b).map(|(x, y)| x + w * y).collect();
            assert!(close(c, &sum), "{c:?} against {sum:?}");
        }
    }
    let sum: Vec<f32> = first.transition_scores().iter().zip(second.transition_scores().iter()).map(|(x, y)| x + w * y).collect();
    assert!(close(&committee.transition_scores(), &sum));
    let loaded = Perceptron::load(tmp.path()).unwrap();
    assert_eq!(loaded.committee_size(), 2);
    assert_eq!(loaded.predict(&d), committee.predict(&d));
    // A newer feature set than this build knows, in any tagger of a saved committee, is refused.
    let file = tmp.path().join("perceptron.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    json["committee"][0]["tagger"]["feature_set"] = serde_json::json!(FEATURE_SET + 1);
    std::fs::write(&file, json.to_string()).unwrap();
    let err = format!("{:#}", Perceptron::load(tmp.path()).unwrap_err());
    assert!(err.contains(&format!("feature set {}", FEATURE_SET + 1)), "{err}");
}

/// A committee of a tagger and its copy weighs the copy 1: twice the scores, the same tags.
#[test]
fn committee_of_a_tagger_with_itself_tags_as_it_does() {
    let d = docs();
    let (one, _) = train(&PerceptronConfig { epochs: 6, ..Default::default() }, &d, &d, None, &Silent).unwrap();
    let two = Perceptron::committee_of(one.clone(), vec![one.clone()], &d).unwrap();
    assert_eq!(two.committee_size(), 2);
    assert_eq!(two.predict(&d), one.predict(&d));
    let tokens = corpus::tokenize(&d[0].text);
    for (a, b) in one.scores(&d[0], &tokens).iter().zip(two.scores(&d[0], &tokens)) {
        assert!(close(&a.iter().map(|x| 2.0 * x).collect::<Vec<_>>(), &b));
    }
}

/// Bad committee settings are refused with what to do: no feature set, one that does not exist,
/// taggers of different labels, a committee inside a committee, and out-of-fold tags of one.
#[test]
fn bad_committees_are_refused() {
    let d = docs();
    let err = |cfg: PerceptronConfig| format!("{:#}", train(&cfg, &d, &d, None, &Silent).unwrap_err());
    assert!(err(PerceptronConfig { epochs: 2, feature_sets: vec![], ..Default::default() }).contains("feature_sets is empty"));
    let e = err(PerceptronConfig { epochs: 2, feature_sets: vec![FEATURE_SET, FEATURE_SET + 1], ..Default::default() });
    assert!(e.contains(&format!("feature set {} does not exist", FEATURE_SET + 1)), "{e}");
    assert!(err(PerceptronConfig { epochs: 2, feature_sets: vec![0], ..Default::default() }).contains("feature set 0 does not exist"));
    let (one, _) = train(&PerceptronConfig { epochs: 2, ..Default::default() }, &d, &d, None, &Silent).unwrap();
    let fewer: Vec<Document> = d.iter().map(|x| Document { spans: x.spans.iter().filter(|s| s.label != "ID").cloned().collect(), ..x.clone() }).collect();
    let (other_labels, _) = train(&PerceptronConfig { epochs: 2, ..Default::default() }, &fewer, &fewer, None, &Silent).unwrap();
    let e = format!("{:#}", Perceptron::committee_of(one.clone(), vec![other_labels], &d).unwrap_err());
    assert!(e.contains("different label sets"), "{e}");
    let two = Perceptron::committee_of(one.clone(), vec![one.clone()], &d).unwrap();
    let e = format!("{:#}", Perceptron::committee_of(one, vec![two], &d).unwrap_err());
    assert!(e.contains("single taggers"), "{e}");
    let cfg = PerceptronConfig { epochs: 2, stack_folds: 3, feature_sets: vec![FEATURE_SET, 1], ..Default::default() };
    let e = format!("{:#}", train_stacked_with_out_of_fold(&cfg, 3, &d, &d, &Silent).unwrap_err());
    assert!(e.contains("not of a committee"), "{e}");
}

/// Seed candidates: one tagger per seed (`seed + 1000·n·j`, n the feature sets), the one with
/// the best dev token F1 kept, and that one is exactly the tagger its seed trains alone. Here
/// one epoch on few documents makes the seeds' taggers differ on a dev set with other names.
#[test]
fn seed_candidates_keep_the_best_tagger_on_dev() {
    let mut d = docs();
    d.push(doc("d", "Nombre: Rosa Vidal.\nNHC: 31415.\nVive en Lugo.", &[("Rosa Vidal", "NOMBRE"), ("31415", "ID"), ("Lugo", "TERRITORIO")]));
    d.push(doc("e", "Paciente Juan Mora, de Ávila.", &[("Juan Mora", "NOMBRE"), ("Ávila", "TERRITORIO")]));
    let dev = vec![
        doc("x", "Paciente Marta Sanz, de Teruel.\nNHC: 77777.", &[("Marta Sanz", "NOMBRE"), ("Teruel", "TERRITORIO"), ("77777", "ID")]),
        doc("y", "Nombre: Pilar Soto Ruiz.\nVive en Ebro Alto.", &[("Pilar Soto Ruiz", "NOMBRE"), ("Ebro Alto", "TERRITORIO")]),
    ];
    let save = |p: &Perceptron| {
        let tmp = tempfile::tempdir().unwrap();
        p.save(tmp.path()).unwrap();
        std::fs::read(tmp.path().join("perceptron.json")).unwrap()
    };
    for (sets, seeds) in [(vec![FEATURE_SET], [7, 1007, 2007, 3007]), (vec![FEATURE_SET, 1], [7, 2007, 4007, 6007])] {
        let cfg = PerceptronConfig { epochs: 1, tune_o_penalty: false, seed: 7, seed_candidates: 4, feature_sets: sets.clone(), ..Default::default() };
        let (kept, summary) = train(&cfg, &d, &dev, None, &Silent).unwrap();
        let tried: Vec<u64> = summary.seed_candidates.iter().map(|c| c.0).collect();
        assert_eq!(tried, seeds, "feature sets {sets:?}");
        let best = summary.seed_candidates.iter().map(|c| c.1).fold(f64::MIN, f64::max);
        let first_best = summary.seed_candidates.iter().find(|c| c.1 == best).unwrap().0;
        let (alone, alone_summary) = train(&PerceptronConfig { seed: first_best, seed_candidates: 1, ..cfg.clone() }, &d, &dev, None, &Silent).unwrap();
        assert!(save(&kept) == save(&alone), "the kept tagger is not the one seed {first_best} trains");
        assert!(alone_summary.seed_candidates.is_empty());
        if sets.len() == 1 {
            let worst = summary.seed_candidates.iter().map(|c| c.1).fold(f64::MAX, f64::min);
            assert!(best > worst, "the seeds should differ here: {:?}", summary.seed_candidates);
        }
    }
    // The same for a stacked tagger and its out-of-fold tags: they are the kept seed's.
    let cfg = PerceptronConfig { epochs: 1, stack_folds: 2, seed_candidates: 2, ..Default::default() };
    let (kept, summary, oof) = train_stacked_with_out_of_fold(&cfg, 2, &d, &dev, &Silent).unwrap();
    assert_eq!(summary.seed_candidates.len(), 2);
    let (plain, _) = train(&cfg, &d, &dev, None, &Silent).unwrap();
    assert!(save(&kept) == save(&plain));
    let seed = summary.seed_candidates.iter().fold((0, f64::MIN), |b, c| if c.1 > b.1 { *c } else { b }).0;
    let (_, _, alone_oof) = train_stacked_with_out_of_fold(&PerceptronConfig { seed, seed_candidates: 1, ..cfg.clone() }, 2, &d, &dev, &Silent).unwrap();
    assert_eq!(oof, alone_oof);
    // Candidates are picked on dev: without dev documents, and with none to pick, they are refused.
    let e = format!("{:#}", train(&PerceptronConfig { seed_candidates: 2, epochs: 1, ..Default::default() }, &d, &[], None, &Silent).unwrap_err());
    assert!(e.contains("seed_candidates = 2 picks a seed on dev documents"), "{e}");
    let e = format!("{:#}", train(&PerceptronConfig { seed_candidates: 0, epochs: 1, ..Default::default() }, &d, &dev, None, &Silent).unwrap_err());
    assert!(e.contains("seed_candidates must be at least 1"), "{e}");
}

/// Progress: training counts one unit per epoch of every perceptron it trains, as many as
/// `planned_epochs` says (plain, members, stacked, committee, seed candidates, out-of-fold), and
/// reporting changes nothing in what is trained.
#[test]
fn progress_counts_match_the_planned_epochs() {
    use std::sync::atomic::{AtomicU64, Ordering};
    #[derive(Default)]
    struct Counting(AtomicU64);
    impl progress::Progress for Counting {
        fn inc(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }
    let mut d = docs();
    d.push(doc("d", "Nombre: Rosa Vidal.\nNHC: 31415.\nVive en Lugo.", &[("Rosa Vidal", "NOMBRE"), ("31415", "ID"), ("Lugo", "TERRITORIO")]));
    d.push(doc("e", "Nombre: Juan Sanz.\nNHC: 27182.\nVive en Ávila.", &[("Juan Sanz", "NOMBRE"), ("27182", "ID"), ("Ávila", "TERRITORIO")]));
    let base = PerceptronConfig { epochs: 3, ..Default::default() };
    let configs = [
        base.clone(),
        PerceptronConfig { members: 2, ..base.clone() },
        PerceptronConfig { stack_folds: 2, ..base.clone() },
        PerceptronConfig { stack_folds: 2, feature_sets: vec![FEATURE_SET, 1], ..base.clone() },
        PerceptronConfig { stack_folds: 2, members: 2, seed_candidates: 2, ..base.clone() },
        PerceptronConfig { stack_folds: 2, boundaries: true, ..base.clone() },
    ];
    for cfg in &configs {
        let counting = Counting::default();
        let (reported, _) = train(cfg, &d, &d, None, &counting).unwrap();
        assert_eq!(counting.0.load(Ordering::Relaxed), perceptron::planned_epochs(cfg), "{cfg:?}");
        let (plain, _) = train(cfg, &d, &d, None, &Silent).unwrap();
        assert_eq!(reported.predict(&d), plain.predict(&d), "{cfg:?}");
    }
    let cfg = PerceptronConfig { stack_folds: 2, seed_candidates: 2, ..base };
    let counting = Counting::default();
    train_stacked_with_out_of_fold(&cfg, 3, &d, &d, &counting).unwrap();
    assert_eq!(counting.0.load(Ordering::Relaxed), perceptron::planned_epochs_with_out_of_fold(&cfg, 3));
    assert_eq!(perceptron::planned_epochs_with_out_of_fold(&cfg, 3), 2 * (2 + 2 + 3) * 3);
}

/// A BILOU tagger learns the training documents, saves and loads as one, and its token F1 on
/// dev counts its four tags of a label as one type (1.0 when every span is found).
#[test]
fn bilou_tagger_learns_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let d = docs();
    let cfg = PerceptronConfig { epochs: 10, tag_scheme: perceptron::TagScheme::Bilou, ..Default::default() };
    let (model, summary) = train(&cfg, &d, &d, Some(tmp.path()), &Silent).unwrap();
    assert_eq!(model.tag_scheme(), perceptron::TagScheme::Bilou);
    assert!(model.tags.tags.iter().any(|t| t == "U-TERRITORIO") && model.tags.tags.iter().any(|t| t == "L-NOMBRE"));
    assert_eq!(summary.dev_token_f1.iter().cloned().fold(0.0, f64::max), 1.0);
    let pred = model.predict(&d);
    for (p, g) in pred.iter().zip(&d) {
        assert_eq!(p.spans, g.spans, "{}", g.id);
    }
    let loaded = Perceptron::load(tmp.path()).unwrap();
    assert_eq!(loaded.tag_scheme(), perceptron::TagScheme::Bilou);
    assert_eq!(loaded.predict(&d), pred);
    // Stacked on its own BILOU tags, too.
    let (stacked, _) = train(&PerceptronConfig { stack_folds: 3, ..cfg }, &d, &d, None, &Silent).unwrap();
    assert_eq!(stacked.predict(&d), pred);
    let (bio, _) = train(&PerceptronConfig { epochs: 10, ..Default::default() }, &d, &d, None, &Silent).unwrap();
    assert_eq!(bio.tag_scheme(), perceptron::TagScheme::Bio);
    assert!("bilou".parse::<perceptron::TagScheme>().is_ok() && "bioes".parse::<perceptron::TagScheme>().is_err());
}

/// `boundaries`: after training, a span-boundary model is learned from jackknifed plain taggers;
/// the summary says what it did on dev, the tagger holds it exactly when dev entity-strict F1
/// did not fall with it, prediction applies it, it is saved and loaded with the tagger, and a
/// corpus too small for its jackknife is refused with what to do.
#[test]
fn boundary_model_is_learned_kept_by_dev_and_saved() {
    let mut d = docs();
    d.push(doc("d", "Nombre: Rosa Vidal.\nNHC: 31415.\nVive en la calle Mayor de Lugo.", &[("Rosa Vidal", "NOMBRE"), ("31415", "ID"), ("Lugo", "TERRITORIO")]));
    d.push(doc("e", "Nombre: Sr. Juan Sanz.\nNHC: 27182.\nVive en Ávila.", &[("Juan Sanz", "NOMBRE"), ("27182", "ID"), ("Ávila", "TERRITORIO")]));
    d.push(doc("f", "Nombre: Dra. Marta Gil Soto.\nNHC: 16180.\nVive en San Sebastián.", &[("Marta Gil Soto", "NOMBRE"), ("16180", "ID"), ("San Sebastián", "TERRITORIO")]));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = PerceptronConfig { epochs: 5, boundaries: true, ..Default::default() };
    let (model, summary) = train(&cfg, &d, &d[..3], Some(tmp.path()), &Silent).unwrap();
    let check = summary.boundaries.clone().expect("a boundary check");
    let (without, with) = (check.dev_strict_f1_without.unwrap(), check.dev_strict_f1_with.unwrap());
    assert_eq!(check.kept, with >= without, "{check:?}");
    assert_eq!(model.boundaries().is_some(), check.kept);
    assert!(check.training.examples > 0, "{check:?}");
    let strict = |pred: &[Document]| eval::evaluate(&d[..3], pred).unwrap().entity_strict.micro.f1;
    assert_eq!(strict(&model.predict(&d[..3])), if check.kept { with } else { without });
    let loaded = Perceptron::load(tmp.path()).unwrap();
    assert_eq!(loaded.boundaries().is_some(), check.kept);
    assert_eq!(loaded.predict(&d), model.predict(&d));
    // Without the setting, the same tagger without a boundary model.
    let (plain, plain_summary) = train(&PerceptronConfig { boundaries: false, ..cfg.clone() }, &d, &d[..3], None, &Silent).unwrap();
    assert!(plain.boundaries().is_none() && plain_summary.boundaries.is_none());
    if !check.kept {
        assert_eq!(plain.predict(&d), model.predict(&d));
    }
    let err = train(&cfg, &d[..4], &[], None, &Silent).unwrap_err().to_string();
    assert!(err.contains("at least 5 training documents"), "{err}");
}

/// Issue 25, case 4: training on documents without any span exited 0 and wrote `"o_penalty": null`,
/// a model that could not be loaded (and, inside `run`, was cached as done). Now refused before
/// anything is trained or written.
#[test]
fn issue25_case4_training_without_any_span_is_refused_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model");
    let mut d = docs();
    d.iter_mut().for_each(|x| x.spans.clear());
    let cfg = PerceptronConfig { epochs: 2, ..Default::default() };
    let e = train(&cfg, &d, &d, Some(&out), &Silent).unwrap_err().to_string();
    assert!(e.contains("none of the 3 training document(s) has an annotated span"), "{e}");
    assert!(!out.exists());
    let stacked = PerceptronConfig { epochs: 2, stack_folds: 2, ..Default::default() };
    let e = train_stacked_with_out_of_fold(&stacked, 2, &d, &d, &Silent).unwrap_err().to_string();
    assert!(e.contains("has an annotated span"), "{e}");
    // One annotated document is enough: the model saves with a finite o_penalty and loads.
    let mut one = d.clone();
    one[0] = docs()[0].clone();
    let (m, summary) = train(&cfg, &one, &one, Some(&out), &Silent).unwrap();
    assert!(summary.o_penalty.is_finite());
    assert_eq!(Perceptron::load(&out).unwrap().predict(&one), m.predict(&one));
}

/// Self-training labels unlabelled text with a first tagger (ignoring any spans the text holds),
/// and refuses text that is also a training document.
#[test]
fn self_training_labels_the_unlabelled_text_and_refuses_training_documents() {
    let d = docs();
    let cfg = PerceptronConfig { epochs: 10, ..Default::default() };
    let mut new = doc("n", "Nombre: Marta Sanz.\nNHC: 77777.\nVive en Teruel.", &[]);
    new.spans = vec![Span::new(0, 6, "NOMBRE")];
    let silver = perceptron::self_training_documents(&cfg, &d, &[], &[new.clone()], &Silent).unwrap();
    let labels: Vec<&str> = silver[0].spans.iter().map(|s| s.label.as_str()).collect();
    assert_eq!((silver[0].id.as_str(), labels), ("n", vec!["NOMBRE", "ID", "TERRITORIO"]));
    let err = perceptron::self_training_documents(&cfg, &d, &[], &d[..1], &Silent).unwrap_err().to_string();
    assert!(err.contains("document a is also a training document"), "{err}");
}
