//! End-to-end tests of the tagger on a few tiny synthetic documents (no corpus files).

use std::path::Path;

use corpus::{Document, Span};
use ner::{Model, Preset, TrainConfig};
use progress::{Progress, Silent};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Builds a document from pieces: plain text, or `(text, label)` for a PHI span. Offsets are in
/// chars, so accents and a leading BOM exercise char/byte differences.
fn doc(id: &str, pieces: &[(&str, Option<&str>)]) -> Document {
    let mut d = Document::new(id, "");
    let mut n = 0;
    for (text, label) in pieces {
        let len = text.chars().count();
        if let Some(l) = label {
            d.spans.push(Span::new(n, n + len, *l));
        }
        d.text.push_str(text);
        n += len;
    }
    d
}

fn docs() -> Vec<Document> {
    vec![
        doc(
            "a",
            &[
                ("\u{feff}Paciente ", None),
                ("Juan Pérez García", Some("NOMBRE_SUJETO_ASISTENCIA")),
                (" de ", None),
                ("45 años", Some("EDAD_SUJETO_ASISTENCIA")),
                (", natural de ", None),
                ("Cádiz", Some("TERRITORIO")),
                (", ingresa el ", None),
                ("12/03/2017", Some("FECHAS")),
                (" en el ", None),
                ("Hospital Universitario La Paz", Some("HOSPITAL")),
                (". Refiere dolor abdominal de tres días de evolución sin fiebre.", None),
            ],
        ),
        doc(
            "b",
            &[
                ("Varón de ", None),
                ("62 años", Some("EDAD_SUJETO_ASISTENCIA")),
                (" remitido por la Dra. ", None),
                ("María López", Some("NOMBRE_PERSONAL_SANITARIO")),
                (" desde ", None),
                ("Sevilla", Some("TERRITORIO")),
                (". Correo: ", None),
                ("mlopez@hospital.es", Some("CORREO_ELECTRONICO")),
                (". NHC ", None),
                ("280595", Some("ID_SUJETO_ASISTENCIA")),
                (". Exploración física normal y analítica sin alteraciones relevantes.", None),
            ],
        ),
        doc(
            "c",
            &[
                ("Mujer de ", None),
                ("30 años", Some("EDAD_SUJETO_ASISTENCIA")),
                (" atendida el ", None),
                ("5 de mayo de 2015", Some("FECHAS")),
                (" por el Dr. ", None),
                ("Pedro Ruiz", Some("NOMBRE_PERSONAL_SANITARIO")),
                (" en ", None),
                ("Málaga", Some("TERRITORIO")),
                (". Se pauta tratamiento y control en consulta externa en un mes.", None),
            ],
        ),
    ]
}

/// A tiny, fast configuration: short windows so that each document spans several overlapping
/// prediction windows, no dropout so that it can overfit quickly.
fn tiny_cfg(epochs: usize) -> TrainConfig {
    let mut c = TrainConfig { seed: 7, ..TrainConfig::default() };
    c.encoder = ner::config::EncoderSection {
        preset: Preset::Tiny,
        vocab_size: Some(300),
        dropout: 0.0,
        attention_dropout: 0.0,
        shape_buckets: 64,
        word_buckets: 128,
        affix_buckets: 32,
        max_position_embeddings: 64,
        ..Default::default()
    };
    c.optimizer = ner::config::OptimizerSection { epochs, batch_size: 4, lr: Some(3e-3), warmup_ratio: 0.05, ..Default::default() };
    c.windows = ner::config::WindowsSection { size: 12, train_stride: 6, predict_stride: 6, ..Default::default() };
    // The encoder alone, and a plain guide where a test turns one on: tests say what they stack.
    c.guide.folds = 0;
    c.guide.perceptron = perceptron::PerceptronConfig::default();
    c.decoding.boundaries = false;
    c.augment.copies = Some(0);
    c.ensemble.members = Some(1);
    c
}

/// `cfg` with `section.key=value` overrides (as `ner train --set` applies them).
fn set(cfg: &TrainConfig, sets: &[&str]) -> TrainConfig {
    cfg.with_overrides(&sets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn strict_f1(gold: &[Document], pred: &[Document]) -> f64 {
    eval::evaluate(gold, pred).unwrap().entity_strict.micro.f1
}

fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let m = Model::load(dir).unwrap();
    m.params.vars().into_iter().map(|(n, v)| (n, v.flatten_all().unwrap().to_vec1().unwrap())).collect()
}

#[test]
fn overfits_three_documents_and_round_trips() {
    let docs = docs();
    let dir = tempfile::tempdir().unwrap();
    let summary = ner::train(&tiny_cfg(60), &docs, &docs, dir.path(), &Silent).unwrap();
    assert_eq!(summary.best_dev.unwrap().strict_f1, 1.0, "{summary:?}");

    for f in ["config.json", "model.safetensors", "tokenizer.json", "labels.json", "training.json"] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let model = Model::load(dir.path()).unwrap();
    let pred = model.predict(&docs).unwrap();
    assert_eq!(strict_f1(&docs, &pred), 1.0);
    for (g, p) in docs.iter().zip(&pred) {
        // Same ids and texts; spans char-exact (equal to gold, BOM and accents included).
        assert_eq!((&g.id, &g.text), (&p.id, &p.text));
        assert_eq!(g.spans, p.spans);
    }
    // Save → load → identical predictions (and a second save is byte-stable).
    let dir2 = tempfile::tempdir().unwrap();
    model.save(dir2.path()).unwrap();
    let again = Model::load(dir2.path()).unwrap().predict(&docs).unwrap();
    assert_eq!(pred, again);
    // Weights are stored under HF names.
    let names: Vec<String> = model.params.vars().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"bert.encoder.layer.1.attention.self.query.weight".to_string()));
    assert!(names.contains(&"classifier.weight".to_string()));
}

/// The `O` penalty: picked on dev with the epoch and saved with the model; a large one tags every
/// token as part of some entity, a large negative one tags none.
#[test]
fn o_penalty_is_picked_on_dev_saved_and_moves_decoding() {
    let docs = docs();
    let dir = tempfile::tempdir().unwrap();
    let summary = ner::train(&tiny_cfg(30), &docs, &docs, dir.path(), &Silent).unwrap();
    let picked = summary.best_dev.unwrap().o_penalty.expect("tuned by default");
    let mut model = Model::load(dir.path()).unwrap();
    assert_eq!(model.settings.o_penalty, picked);
    assert!(summary.best_dev.unwrap().guide_weight.is_none(), "a plain model has no guide weight");

    let tried = model.tune_decoding(&docs, true, |p| Ok(strict_f1(&docs, p))).unwrap();
    assert_eq!(tried.len(), 1 + ner::O_PENALTY_FRACTIONS.len(), "{tried:?}");
    assert_eq!(tried[0].o_penalty, 0.0, "the untuned decoding is tried first");
    assert!(tried.iter().any(|t| t.o_penalty == model.settings.o_penalty));
    // Positive fractions give positive penalties, and the negative one a negative penalty.
    assert!(tried[1..].iter().zip(ner::O_PENALTY_FRACTIONS).all(|(t, f)| t.o_penalty.signum() == f.signum() && t.o_penalty != 0.0), "{tried:?}");
    // Ties keep no penalty: the best score at 0 is never displaced by an equal one.
    let best = tried.iter().map(|t| t.score).fold(f64::NEG_INFINITY, f64::max);
    if tried[0].score == best {
        assert_eq!(model.settings.o_penalty, 0.0);
    }

    model.settings.o_penalty = 1e4;
    for (d, p) in docs.iter().zip(model.predict(&docs).unwrap()) {
        let covered: usize = p.spans.iter().map(|s| corpus::tokenize(&d.text).iter().filter(|t| t.start >= s.start && t.end <= s.end).count()).sum();
        assert_eq!(covered, corpus::tokenize(&d.text).len(), "document {}: every token is in an entity", d.id);
    }
    model.settings.o_penalty = -1e4;
    assert!(model.predict(&docs).unwrap().iter().all(|p| p.spans.is_empty()));
    // Saved and loaded with the model.
    let dir2 = tempfile::tempdir().unwrap();
    model.save(dir2.path()).unwrap();
    assert_eq!(Model::load(dir2.path()).unwrap().settings.o_penalty, -1e4);
}

/// Counts progress steps and asks to stop (a simulated kill) when the count reaches `.1`.
struct Killer(AtomicU64, u64);

impl Progress for Killer {
    fn inc(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn stop_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed) == self.1
    }
}

#[test]
fn resume_after_a_kill_matches_an_uninterrupted_run() {
    let docs = docs();
    let cfg = tiny_cfg(4);
    let full = tempfile::tempdir().unwrap();
    ner::train(&cfg, &docs, &docs, full.path(), &Silent).unwrap();

    let cut = tempfile::tempdir().unwrap();
    // "Kill" in the middle of the second epoch.
    let s = ner::train(&cfg, &docs, &docs, cut.path(), &Killer(AtomicU64::new(0), 5)).unwrap();
    assert!(s.interrupted);
    let resumed = ner::train(&cfg, &docs, &docs, cut.path(), &Silent).unwrap();
    assert!(!resumed.interrupted);
    assert_eq!(resumed.epochs_completed, 4);
    let (a, b) = (weights(&full.path().join("checkpoint")), weights(&cut.path().join("checkpoint")));
    for ((na, wa), (nb, wb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        let diff = wa.iter().zip(wb).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "{na}: resumed run differs by {diff}");
    }
    // A different configuration refuses to resume from the checkpoint.
    let other = TrainConfig { seed: 8, ..cfg };
    assert!(ner::train(&other, &docs, &docs, cut.path(), &Silent).is_err());
}

#[test]
fn fine_tunes_from_an_hf_directory() {
    let docs = docs();
    let base = tempfile::tempdir().unwrap();
    ner::train(&tiny_cfg(2), &docs, &[], base.path(), &Silent).unwrap();
    let cfg = { let mut c = tiny_cfg(2); c.encoder.init = Some(base.path().to_path_buf()); c.optimizer.lr = Some(1e-3); c };
    let out = tempfile::tempdir().unwrap();
    let s = ner::train(&cfg, &docs, &docs, out.path(), &Silent).unwrap();
    assert_eq!(s.epochs_completed, 2);
    // The tokenizer is the checkpoint's.
    let a = std::fs::read_to_string(base.path().join("tokenizer.json")).unwrap();
    let b = std::fs::read_to_string(out.path().join("tokenizer.json")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn same_seed_gives_identical_models() {
    let docs = docs();
    let cfg = set(&tiny_cfg(2), &["encoder.dropout=0.1", "encoder.attention_dropout=0.1"]);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    ner::train(&cfg, &docs, &docs, a.path(), &Silent).unwrap();
    ner::train(&cfg, &docs, &docs, b.path(), &Silent).unwrap();
    let ta = std::fs::read_to_string(a.path().join("tokenizer.json")).unwrap();
    let tb = std::fs::read_to_string(b.path().join("tokenizer.json")).unwrap();
    assert_eq!(ta, tb, "vocabulary learning must be deterministic");
    assert_eq!(weights(&a.path().join("checkpoint")), weights(&b.path().join("checkpoint")));
}

/// Every trainable tensor of the tagger (encoder, shape and lexical embeddings, head) gets a
/// finite, non-zero gradient from one loss: no op on the path stops it.
#[test]
fn every_tagger_parameter_gets_a_gradient() {
    let docs = docs();
    let dir = tempfile::tempdir().unwrap();
    ner::train(&tiny_cfg(1), &docs, &[], dir.path(), &Silent).unwrap();
    let model = Model::load(dir.path()).unwrap();
    assert!(model.settings.word_buckets > 0 && model.settings.affix_buckets > 0);
    let examples = model.encode(&docs, 6, true);
    let refs: Vec<_> = examples.iter().collect();
    let batch = model.batch(&refs).unwrap();
    assert!(batch.lexical.is_some());
    let loss = model.loss(&batch, &mut nn::Mode::Eval).unwrap();
    let grads = loss.backward().unwrap();
    let vars = model.params.vars();
    assert!(vars.iter().any(|(n, _)| n.starts_with("lexical_embeddings")));
    for (name, var) in vars {
        let g = grads.get(&var).unwrap_or_else(|| panic!("{name}: no gradient"));
        let v: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name}: non-finite gradient");
        assert!(v.iter().any(|&x| x != 0.0), "{name}: zero gradient");
    }
}

/// A stacked model: a guide perceptron is trained (and jackknifed over folds for the encoder's
/// training inputs), saved in `guide/`, and loaded back; without it the directory is refused.
#[test]
fn stacked_model_keeps_its_guide() {
    let docs = docs();
    let cfg = set(&tiny_cfg(40), &["guide.folds=3", "guide.perceptron.epochs=3"]);
    let dir = tempfile::tempdir().unwrap();
    let summary = ner::train(&cfg, &docs, &docs, dir.path(), &Silent).unwrap();
    assert_eq!(summary.best_dev.unwrap().strict_f1, 1.0, "{summary:?}");
    assert!(dir.path().join("guide").join("perceptron.json").exists());
    let model = Model::load(dir.path()).unwrap();
    assert!(model.settings.guide && model.guide.is_some());
    let names: Vec<String> = model.params.vars().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"guide_embeddings.weight".to_string()));
    let examples = model.encode(&docs, 6, false);
    // Guide tags reach the inputs: some words carry an entity tag (> 1 is B-/I-; 1 is O).
    assert!(examples.iter().any(|e| e.guide.iter().any(|&g| g > 1)));
    assert_eq!(strict_f1(&docs, &model.predict(&docs).unwrap()), 1.0);
    // The guide weight was picked on dev among the multiples tried, and saved.
    let mut model = model;
    let tried = model.tune_decoding(&docs, false, |p| Ok(strict_f1(&docs, p))).unwrap();
    assert_eq!(tried.len(), 6, "{tried:?}");
    assert!(tried.iter().any(|t| t.guide_weight == model.settings.guide_weight));
    assert!(tried.iter().all(|t| t.guide_weight.is_finite() && t.guide_weight >= 0.0 && t.o_penalty == 0.0), "{tried:?}");
    assert_eq!(model.settings.o_penalty, 0.0);
    // Weighted far above the encoder, the product decodes as the guide alone does: the guide's
    // tags and transitions are mapped onto the model's tag order correctly.
    let mut unseen = docs.clone();
    for d in &mut unseen {
        d.text = d.text.replace("Paciente", "Enfermo").replace("remitido", "enviado");
    }
    model.settings.guide_weight = 1e4;
    let guide_alone = model.guide.as_ref().unwrap().predict(&unseen);
    let product = model.predict(&unseen).unwrap();
    for (a, b) in guide_alone.iter().zip(&product) {
        assert_eq!(a.spans, b.spans, "document {}", a.id);
    }
    assert!(!model.guide.as_ref().unwrap().is_stacked());
    std::fs::remove_dir_all(dir.path().join("guide")).unwrap();
    let err = Model::load(dir.path()).err().expect("a stacked model without its guide must not load");
    assert!(format!("{err:#}").contains("guide"), "{err:#}");
}

/// `guide.perceptron.stack_folds`: the kept guide is a stacked perceptron (saved with its first stage), and
/// the model trains, saves and loads with it.
#[test]
fn stacked_guide_is_kept_and_loaded() {
    let docs = docs();
    let cfg = set(&tiny_cfg(20), &["guide.folds=3", "guide.perceptron.epochs=3", "guide.perceptron.stack_folds=3"]);
    let dir = tempfile::tempdir().unwrap();
    ner::train(&cfg, &docs, &docs, dir.path(), &Silent).unwrap();
    let model = Model::load(dir.path()).unwrap();
    assert!(model.guide.as_ref().expect("a guide").is_stacked());
    assert_eq!(model.predict(&docs).unwrap().len(), docs.len());
}

/// `guide.stacked_inputs`: the encoder trains on the stacked guide's own out-of-fold tags; the
/// model trains, loads and predicts, a second start resumes from the checkpoint (recomputing
/// those tags), and the setting without a stacked guide is refused with what to set.
#[test]
fn stacked_guide_inputs_train_resume_and_need_a_stacked_guide() {
    let docs = docs();
    let cfg = set(&tiny_cfg(20), &["guide.folds=3", "guide.perceptron.epochs=3", "guide.perceptron.stack_folds=3", "guide.stacked_inputs=true"]);
    let dir = tempfile::tempdir().unwrap();
    let first = ner::train(&cfg, &docs, &docs, dir.path(), &Silent).unwrap();
    let model = Model::load(dir.path()).unwrap();
    assert!(model.guide.as_ref().expect("a guide").is_stacked());
    let pred = model.predict(&docs).unwrap();
    let again = ner::train(&cfg, &docs, &docs, dir.path(), &Silent).unwrap();
    assert_eq!(again.best_dev.map(|d| d.strict_f1), first.best_dev.map(|d| d.strict_f1));
    assert_eq!(Model::load(dir.path()).unwrap().predict(&docs).unwrap(), pred);
    let bad = set(&cfg, &["guide.perceptron.stack_folds=0"]);
    let err = ner::train(&bad, &docs, &docs, tempfile::tempdir().unwrap().path(), &Silent).unwrap_err();
    assert!(format!("{err:#}").contains("guide.perceptron.stack_folds"), "{err:#}");
}

/// `guide.perceptron.feature_sets` with two entries: the kept guide is a committee of two perceptrons (one
/// per feature set), saved and loaded whole; stacked inputs from a committee, and no feature set
/// at all, are refused with what to set.
#[test]
fn committee_guide_is_kept_and_loaded() {
    let docs = docs();
    let cfg = set(&tiny_cfg(4), &["guide.folds=3", "guide.perceptron.epochs=3", &format!("guide.perceptron.feature_sets=[{}, 1]", perceptron::FEATURE_SET)]);
    let dir = tempfile::tempdir().unwrap();
    ner::train(&cfg, &docs, &docs, dir.path(), &Silent).unwrap();
    let model = Model::load(dir.path()).unwrap();
    assert_eq!(model.guide.as_ref().expect("a guide").committee_size(), 2);
    assert_eq!(model.predict(&docs).unwrap().len(), docs.len());
    let bad = set(&cfg, &["guide.perceptron.stack_folds=3", "guide.stacked_inputs=true"]);
    let err = ner::train(&bad, &docs, &docs, tempfile::tempdir().unwrap().path(), &Silent).unwrap_err();
    assert!(format!("{err:#}").contains("not a committee"), "{err:#}");
    let none = set(&cfg, &["guide.perceptron.feature_sets=[]"]);
    let err = ner::train(&none, &docs, &docs, tempfile::tempdir().unwrap().path(), &Silent).unwrap_err();
    assert!(format!("{err:#}").contains("guide.perceptron.feature_sets is empty"), "{err:#}");
}

/// `guide_seed_candidates`: the kept guide is the best on dev of perceptrons on seeds `seed`,
/// `seed + 1000`, …; it is exactly the perceptron that seed trains, the candidates' dev scores
/// are reported (progress and `training.json`), and candidates without dev are refused.
#[test]
fn guide_is_picked_among_seed_candidates_on_dev() {
    let docs = docs();
    let cfg = set(&tiny_cfg(1), &["guide.folds=3", "guide.perceptron.epochs=1", "guide.perceptron.seed_candidates=3", "seed=5"]);
    let dir = tempfile::tempdir().unwrap();
    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);
    impl Progress for Lines {
        fn println(&self, line: &str) {
            self.0.lock().unwrap().push(line.to_string());
        }
    }
    let lines = Lines::default();
    let summary = ner::train(&cfg, &docs, &docs[..2], dir.path(), &lines).unwrap();
    let seeds: Vec<u64> = summary.guide_seed_candidates.iter().map(|c| c.0).collect();
    assert_eq!(seeds, [5, 1005, 2005]);
    let reported: Vec<String> = summary.guide_seed_candidates.iter().map(|(seed, f1)| format!("guide on seed {seed}: dev token F1 {f1:.4}")).collect();
    let printed: Vec<String> = lines.0.into_inner().unwrap().into_iter().filter(|l| l.starts_with("guide on seed")).collect();
    assert_eq!(printed, reported);
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("training.json")).unwrap()).unwrap();
    assert_eq!(saved["summary"]["guide_seed_candidates"].as_array().map(|a| a.len()), Some(3), "{saved}");
    let best = summary.guide_seed_candidates.iter().map(|c| c.1).fold(f64::MIN, f64::max);
    let seed = summary.guide_seed_candidates.iter().find(|c| c.1 == best).unwrap().0;
    let alone = perceptron::PerceptronConfig { epochs: 1, seed, ..Default::default() };
    let (alone, _) = perceptron::train(&alone, &docs, &docs[..2], None, &Silent).unwrap();
    let model = Model::load(dir.path()).unwrap();
    let unseen = [doc("n", &[("Paciente ", None), ("Ana Ruiz", Some("NOMBRE_SUJETO_ASISTENCIA")), (" de Lugo, 30 años.", None)])];
    assert_eq!(model.guide.as_ref().expect("a guide").predict(&docs), alone.predict(&docs));
    assert_eq!(model.guide.as_ref().unwrap().predict(&unseen), alone.predict(&unseen));
    let err = ner::train(&cfg, &docs, &[], tempfile::tempdir().unwrap().path(), &Silent).unwrap_err();
    assert!(format!("{err:#}").contains("picks a seed on dev documents"), "{err:#}");

    // The guide's progress: one unit per perceptron epoch, as many as announced (3 candidates of
    // 1 epoch, then 3 jackknife folds of 1 epoch).
    #[derive(Default)]
    struct Counting {
        planned: Mutex<Option<u64>>,
        in_guide: std::sync::atomic::AtomicBool,
        done: AtomicU64,
    }
    impl Progress for Counting {
        fn start(&self, stage: &str, total: u64) {
            let guide = stage.starts_with("guide");
            if guide {
                *self.planned.lock().unwrap() = Some(total);
            }
            self.in_guide.store(guide, Ordering::Relaxed);
        }
        fn inc(&self, n: u64) {
            if self.in_guide.load(Ordering::Relaxed) {
                self.done.fetch_add(n, Ordering::Relaxed);
            }
        }
        fn finish(&self) {
            self.in_guide.store(false, Ordering::Relaxed);
        }
    }
    let counting = Counting::default();
    ner::train(&cfg, &docs, &docs[..2], tempfile::tempdir().unwrap().path(), &counting).unwrap();
    assert_eq!(*counting.planned.lock().unwrap(), Some(6));
    assert_eq!(counting.done.load(Ordering::Relaxed), 6);
}

/// `boundaries`: after the encoder, a span-boundary model is learned from the guide's jackknifed
/// tags; the summary and `training.json` say what it did on dev; it is in the model directory
/// exactly when kept (dev did not fall with it); prediction applies it; a model saved again
/// without it loses the file; and without a guide the setting is refused with what to set.
#[test]
fn boundary_model_is_learned_kept_by_dev_and_applied() {
    let docs = docs();
    let cfg = set(&tiny_cfg(4), &["guide.folds=3", "guide.perceptron.epochs=3", "decoding.boundaries=true"]);
    let dir = tempfile::tempdir().unwrap();
    let summary = ner::train(&cfg, &docs, &docs, dir.path(), &Silent).unwrap();
    let outcome = summary.boundaries.clone().expect("a boundary outcome");
    let (without, with) = (outcome.dev_without.expect("dev scores"), outcome.dev_with.expect("dev scores"));
    assert_eq!(outcome.kept, with.strict_f1 >= without.strict_f1, "{outcome:?}");
    let model = Model::load(dir.path()).unwrap();
    assert_eq!(model.boundaries.is_some(), outcome.kept);
    let kept_scores = if outcome.kept { with } else { without };
    assert_eq!(strict_f1(&docs, &model.predict(&docs).unwrap()), kept_scores.strict_f1);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("training.json")).unwrap()).unwrap();
    assert_eq!(json["config"]["decoding"]["boundaries"], true);
    assert_eq!(json["summary"]["boundaries"]["kept"], outcome.kept);
    // Learning it again (`add_boundaries`) replaces it: the model is scored without the old one
    // (not with it applied twice), so the outcome is the same.
    let again = ner::add_boundaries(&cfg, &docs, &docs, dir.path()).unwrap();
    assert_eq!((again.dev_without, again.dev_with, again.kept), (outcome.dev_without, outcome.dev_with, outcome.kept));
    assert_eq!(Model::load(dir.path()).unwrap().boundaries.is_some(), outcome.kept);

    // Prediction applies whatever boundary model the model holds, after decoding.
    let mut model = model;
    model.boundaries = None;
    let plain = model.predict(&docs).unwrap();
    let shifted: Vec<Document> = docs
        .iter()
        .map(|d| {
            // A tagger that always takes the word before each entity too ("de 45 años").
            let tokens = corpus::tokenize(&d.text);
            let spans = d
                .spans
                .iter()
                .map(|s| {
                    let i = tokens.iter().position(|t| t.start == s.start).unwrap();
                    Span::new(tokens[i.saturating_sub(1)].start, s.end, s.label.clone())
                })
                .collect();
            Document { spans, ..d.clone() }
        })
        .collect();
    let (b, _) = perceptron::train_boundaries(&perceptron::BoundaryConfig::default(), &docs, &shifted).unwrap();
    assert_ne!(b.apply_all(&plain), plain, "a boundary model learned to drop a word moves something");
    model.boundaries = Some(b.clone());
    assert_eq!(model.predict(&docs).unwrap(), b.apply_all(&plain));
    model.save(dir.path()).unwrap();
    assert!(dir.path().join(perceptron::BOUNDARY_FILE).exists());
    model.boundaries = None;
    model.save(dir.path()).unwrap();
    assert!(!dir.path().join(perceptron::BOUNDARY_FILE).exists(), "a stale boundary model would move the next model's entities");

    // A finished run without it gains it by resuming with the setting, without training again.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = ner::train(&set(&cfg, &["decoding.boundaries=false"]), &docs, &docs, plain_dir.path(), &Silent).unwrap();
    assert!(plain.boundaries.is_none() && !plain_dir.path().join(perceptron::BOUNDARY_FILE).exists());
    let trained = weights(plain_dir.path());
    let resumed = ner::train(&cfg, &docs, &docs, plain_dir.path(), &Silent).unwrap();
    assert_eq!(weights(plain_dir.path()), trained, "resuming a finished run trains nothing");
    let r = resumed.boundaries.expect("a boundary outcome");
    assert_eq!((r.dev_without, r.dev_with, r.kept), (outcome.dev_without, outcome.dev_with, outcome.kept));

    let bad = set(&cfg, &["guide.folds=0"]);
    let err = ner::train(&bad, &docs, &docs, tempfile::tempdir().unwrap().path(), &Silent).unwrap_err();
    assert!(format!("{err:#}").contains("guide.folds"), "{err:#}");
}

/// Self-training: a first tagger labels the unlabelled documents (their own spans ignored) and
/// the final tagger trains on them too; a first tagger already in place is reused, not retrained.
#[test]
fn self_training_labels_unlabelled_documents_and_reuses_a_finished_first_tagger() {
    let docs = docs();
    let (gold, mut unlabelled) = (docs[..2].to_vec(), docs[2..].to_vec());
    // Spans of the unlabelled text must play no part: a label no gold document has.
    unlabelled[0].spans = vec![Span::new(0, 5, "BOGUS")];
    let cfg = tiny_cfg(30);
    let a = tempfile::tempdir().unwrap();
    let s = ner::self_train(&cfg, &gold, &gold, &unlabelled, a.path(), &Silent).unwrap();
    assert_eq!(s.silver_documents, 1);
    assert!(s.first_tagger.as_ref().is_some_and(|f| f.silver_documents == 0), "{s:?}");
    assert!(!a.path().join("self-training").exists(), "the first tagger is removed once the final one is written");
    let labels = std::fs::read_to_string(a.path().join("labels.json")).unwrap();
    assert!(!labels.contains("BOGUS"), "{labels}");
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.path().join("training.json")).unwrap()).unwrap();
    assert_eq!(saved["summary"]["silver_documents"], 1);
    assert!(saved["summary"]["first_tagger"]["minutes"].is_number());

    // A first tagger already trained (as a killed run leaves it) is reused: the same final model.
    let b = tempfile::tempdir().unwrap();
    ner::train(&cfg, &gold, &gold, &b.path().join("self-training/first"), &Silent).unwrap();
    ner::self_train(&cfg, &gold, &gold, &unlabelled, b.path(), &Silent).unwrap();
    assert_eq!(weights(a.path()), weights(b.path()));
    // A first tagger of other settings, or a training document among the unlabelled, is refused.
    let c = tempfile::tempdir().unwrap();
    ner::train(&cfg, &gold, &gold, &c.path().join("self-training/first"), &Silent).unwrap();
    let other = TrainConfig { seed: 8, ..cfg.clone() };
    assert!(ner::self_train(&other, &gold, &gold, &unlabelled, c.path(), &Silent).unwrap_err().to_string().contains("other settings"));
    assert!(ner::self_train(&cfg, &gold, &gold, &gold[..1], c.path(), &Silent).unwrap_err().to_string().contains("also a training document"));
    // A checkpoint of a run without self-training documents does not resume into one with them.
    let d = tempfile::tempdir().unwrap();
    ner::train(&cfg, &gold, &gold, d.path(), &Silent).unwrap();
    let err = ner::train_with_silver(&cfg, &gold, &unlabelled, &gold, d.path(), &Silent).unwrap_err().to_string();
    assert!(err.contains("self-training documents"), "{err}");
}

/// An ensemble: members on seeds `seed + i` in `member-I`, loaded back as one tagger whose spans
/// are the members' majority vote; a run killed in its second member resumes to the same model.
#[test]
fn ensemble_trains_members_votes_and_resumes() {
    let docs = docs();
    let cfg = set(&tiny_cfg(3), &["ensemble.members=3"]);
    let dir = tempfile::tempdir().unwrap();
    let full = ner::train(&cfg, &docs, &docs, dir.path(), &Silent).unwrap();
    assert_eq!(full.members.len(), 3);
    assert!(full.best_dev.is_some());
    // Member 0 is the model a single run on the same seed trains.
    let single = tempfile::tempdir().unwrap();
    ner::train(&set(&cfg, &["ensemble.members=1"]), &docs, &docs, single.path(), &Silent).unwrap();
    assert_eq!(weights(&dir.path().join("member-0")), weights(single.path()));
    assert_ne!(weights(&dir.path().join("member-0")), weights(&dir.path().join("member-1")));

    let ensemble = ner::load_tagger(dir.path(), None).unwrap();
    assert_eq!(ensemble.kind(), "ensemble");
    let each: Vec<Vec<Document>> = (0..3).map(|i| ner::load_tagger(&dir.path().join(format!("member-{i}")), None).unwrap().predict(&docs).unwrap()).collect();
    assert_eq!(ensemble.predict(&docs).unwrap(), tagging::vote::majority(&each).unwrap());

    // Killed in the second member's training: resumed, the same members.
    // What one member's run counts, so that one step more stops the second member.
    let counted = Killer(AtomicU64::new(0), 0);
    ner::train(&set(&cfg, &["ensemble.members=1"]), &docs, &docs, tempfile::tempdir().unwrap().path(), &counted).unwrap();
    let per_member = counted.0.load(Ordering::Relaxed);
    let cut = tempfile::tempdir().unwrap();
    let s = ner::train(&cfg, &docs, &docs, cut.path(), &Killer(AtomicU64::new(0), per_member + 1)).unwrap();
    assert!(s.interrupted, "{per_member}");
    assert!(!ner::Ensemble::is_model_dir(cut.path()), "no ensemble before all its members are trained");
    let resumed = ner::train(&cfg, &docs, &docs, cut.path(), &Silent).unwrap();
    assert_eq!(resumed.best_dev, full.best_dev);
    for i in 0..3 {
        let m = format!("member-{i}");
        let (a, b) = (weights(&dir.path().join(&m)), weights(&cut.path().join(&m)));
        for ((na, wa), (_, wb)) in a.iter().zip(&b) {
            let diff = wa.iter().zip(wb).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(diff < 1e-5, "{m} {na}: resumed run differs by {diff}");
        }
    }
}


/// A time budget the planned epochs do not fit shortens the learning-rate schedule, and the run's
/// summary and `training.json` say so (the model then depends on the machine's speed); without a
/// budget nothing is fitted.
#[test]
fn a_schedule_fitted_to_the_budget_is_recorded() {
    let docs = docs();
    let dir = tempfile::tempdir().unwrap();
    let free = ner::train(&tiny_cfg(2), &docs, &docs, dir.path(), &Silent).unwrap();
    assert!(!free.schedule_fitted_to_budget && !free.budget_exhausted);
    assert!(!std::fs::read_to_string(dir.path().join("training.json")).unwrap().contains("schedule_fitted_to_budget"));
    let mut cfg = tiny_cfg(40);
    cfg.optimizer.max_minutes = Some(1e-6);
    let dir = tempfile::tempdir().unwrap();
    let tight = ner::train(&cfg, &docs, &docs, dir.path(), &Silent).unwrap();
    assert!(tight.schedule_fitted_to_budget && tight.epochs_completed < 40);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("training.json")).unwrap()).unwrap();
    assert_eq!(json["summary"]["schedule_fitted_to_budget"], serde_json::Value::Bool(true));
}
