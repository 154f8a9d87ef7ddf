//! Prediction through the encoder's inference path (`nn::InferenceEncoder`: no graph, no
//! padding) gives the training forward's log-probabilities (within 1e-4) and the same tags.

use corpus::{Document, Span};
use ner::{ForwardPath, Model};

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
        doc("a", &[("Paciente ", None), ("Juan Pérez García", Some("NOMBRE")), (" de ", None), ("45 años", Some("EDAD")), (", natural de ", None), ("Cádiz", Some("TERRITORIO")), (", ingresa el ", None), ("12/03/2017", Some("FECHAS")), (". Refiere dolor abdominal de tres días de evolución sin fiebre.", None)]),
        doc("b", &[("Varón de ", None), ("62 años", Some("EDAD")), (" remitido por la Dra. ", None), ("María López", Some("NOMBRE")), (" desde ", None), ("Sevilla", Some("TERRITORIO")), (". Exploración física normal.", None)]),
        doc("c", &[("Mujer de ", None), ("30 años", Some("EDAD")), (" atendida el ", None), ("5 de mayo de 2015", Some("FECHAS")), (" en ", None), ("Málaga", Some("TERRITORIO")), (".", None)]),
    ]
}

/// A model with random weights (larger than BERT's init, so attention is far from uniform) and
/// the word-shape and lexical input tables, in windows of uneven sub-word lengths.
fn random_model(docs: &[Document]) -> Model {
    let words: Vec<String> = docs.iter().flat_map(|d| corpus::tokenize(&d.text).into_iter().map(|t| d.text.chars().skip(t.start).take(t.end - t.start).collect::<String>())).collect();
    // A small vocabulary, so that words split into several sub-words.
    let subwords = ner::subword::Subwords::train(words.iter().map(String::as_str), 60).unwrap();
    let mut config = nn::EncoderConfig::bert(subwords.vocab_size(), 48, 2, 4, 96);
    config.initializer_range = 0.2;
    config.max_position_embeddings = 64;
    let settings = ner::TaggerSettings { window: 12, stride: 6, shape_buckets: 64, word_buckets: 128, affix_buckets: 32, ..Default::default() };
    let tags = ["O", "B-NOMBRE", "I-NOMBRE", "B-EDAD", "I-EDAD", "B-FECHAS", "I-FECHAS", "B-TERRITORIO", "I-TERRITORIO"];
    let labels = ner::TagSet::from_tags(tags.iter().map(|t| t.to_string()).collect());
    Model::new(config, settings, labels, subwords, 5, false).unwrap()
}

#[test]
fn inference_path_gives_the_training_forwards_scores_and_tags() {
    let docs = docs();
    let mut model = random_model(&docs);
    assert!(model.settings.word_buckets > 0 && model.settings.shape_buckets > 0);
    // Several batch sizes: a ragged batch must not mix its sequences.
    for batch in [1, 3, 32] {
        model.settings.predict_batch = batch;
        let fast = model.emissions_via(&docs, ForwardPath::Inference).unwrap();
        let slow = model.emissions_via(&docs, ForwardPath::Training).unwrap();
        let mut worst = 0f32;
        for ((tf, ef), (ts, es)) in fast.iter().zip(&slow) {
            assert_eq!(tf, ts);
            for (a, b) in ef.iter().zip(es) {
                for (x, y) in a.iter().zip(b) {
                    worst = worst.max((x - y).abs());
                }
            }
        }
        eprintln!("batch {batch}: max |Δ log p| {worst:.2e}");
        assert!(worst < 1e-4, "batch {batch}: log-probabilities differ by {worst:e}");
        let pred = model.predict_via(&docs, ForwardPath::Inference).unwrap();
        assert!(pred.iter().any(|d| !d.spans.is_empty()), "a random model still tags something");
        assert_eq!(pred, model.predict_via(&docs, ForwardPath::Training).unwrap());
    }
    // Packed once (as a loaded tagger is): the same predictions, one document at a time too.
    let want = model.predict_via(&docs, ForwardPath::Training).unwrap();
    model.pack_for_inference().unwrap();
    assert_eq!(model.predict(&docs).unwrap(), want);
    for (d, w) in docs.iter().zip(&want) {
        assert_eq!(&model.predict(std::slice::from_ref(d)).unwrap()[0], w);
    }
}

/// `ner::predict_each` gives the spans of one call for all, whatever the documents in flight,
/// in input order, with one latency per document.
#[test]
fn predict_each_does_not_depend_on_jobs() {
    let mut docs = docs();
    for i in 0..5 {
        let mut d = docs[i % 3].clone();
        d.id = format!("copy{i}");
        docs.push(d);
    }
    let model = random_model(&docs);
    model.pack_for_inference().unwrap();
    let want = model.predict(&docs).unwrap();
    for jobs in [1, 2, 3, 16] {
        let (got, latencies) = ner::predict_each(&model, &docs, jobs, &progress::Silent).unwrap();
        assert_eq!(got, want, "jobs {jobs}");
        assert_eq!(latencies.len(), docs.len());
    }
}

/// bf16 weights (where the CPU has AVX-512 BF16) keep the log-probabilities close to f32's;
/// where it does not, the request falls back to f32 and they are equal.
#[test]
fn bf16_packing_stays_close_to_f32() {
    let docs = docs();
    let model = random_model(&docs);
    model.pack_for_inference().unwrap();
    let f32s = model.emissions_via(&docs, ForwardPath::Inference).unwrap();
    model.pack_for_inference_at(ner::Precision::Bf16).unwrap();
    let bf16s = model.emissions_via(&docs, ForwardPath::Inference).unwrap();
    let mut worst = 0f32;
    for ((ta, ea), (tb, eb)) in f32s.iter().zip(&bf16s) {
        assert_eq!(ta, tb);
        for (a, b) in ea.iter().zip(eb) {
            for (x, y) in a.iter().zip(b) {
                worst = worst.max((x - y).abs());
            }
        }
    }
    eprintln!("bf16 ({:?} here): max |Δ log p| {worst:.2e}", ner::Precision::Bf16.effective());
    if ner::Precision::Bf16.effective() == ner::Precision::Bf16 {
        assert!(worst > 0.0, "bf16 ran, so some score must move");
        assert!(worst < 0.1, "bf16 moves log-probabilities by {worst:e}");
    } else {
        assert_eq!(worst, 0.0);
    }
}
