//! The perceptron's language: detected from the training documents when not set, kept in the
//! saved model (left out when Spanish, so Spanish models are saved as before), and absent from a
//! default config's serialization (pipeline stage keys hash non-default settings only).

use corpus::{Document, Span};
use lang::Language;
use perceptron::{train, Perceptron, PerceptronConfig};
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

fn german() -> Vec<Document> {
    vec![
        doc(
            "a",
            "Name: Anna Müller\nGeburtsdatum: 03.04.1950\nDie Patientin wurde mit Bauchschmerzen in der Klinik aufgenommen und ist nach drei Tagen entlassen worden.",
            &[("Anna Müller", "NAME"), ("03.04.1950", "DATUM")],
        ),
        doc(
            "b",
            "Name: Peter Schmidt\nGeburtsdatum: 12.11.1948\nDer Patient kam mit Atemnot zu uns, die Symptome sind unter Therapie rasch besser geworden.",
            &[("Peter Schmidt", "NAME"), ("12.11.1948", "DATUM")],
        ),
        doc(
            "c",
            "Name: Julia Weber\nGeburtsdatum: 27.01.1962\nDie Patientin stellte sich bei uns mit Fieber vor, eine Pneumonie wurde ausgeschlossen.",
            &[("Julia Weber", "NAME"), ("27.01.1962", "DATUM")],
        ),
    ]
}

fn spanish() -> Vec<Document> {
    vec![
        doc("a", "Nombre: Ana García.\nLa paciente vive en Madrid con su madre y refiere dolor desde hace tres días.", &[("Ana García", "NOMBRE"), ("Madrid", "TERRITORIO")]),
        doc("b", "Nombre: Luis Pérez.\nEl paciente vive en Soria y acude por fiebre con tos desde el lunes.", &[("Luis Pérez", "NOMBRE"), ("Soria", "TERRITORIO")]),
        doc("c", "Nombre: Eva Ruiz.\nLa paciente vive en Cuenca y presenta un cuadro de dolor abdominal.", &[("Eva Ruiz", "NOMBRE"), ("Cuenca", "TERRITORIO")]),
    ]
}

fn saved_json(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("perceptron.json")).unwrap()).unwrap()
}

#[test]
fn a_default_config_serializes_without_a_language() {
    let json = serde_json::to_value(PerceptronConfig::default()).unwrap();
    assert!(json.get("language").is_none(), "{json}");
    let set: PerceptronConfig = toml::from_str("language = \"de\"").unwrap();
    assert_eq!(set.language, Some(Language::De));
    assert!(toml::from_str::<PerceptronConfig>("language = \"xx\"").is_err());
}

#[test]
fn the_training_language_is_detected_and_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let d = german();
    let (model, _) = train(&PerceptronConfig { epochs: 5, ..Default::default() }, &d, &d, Some(tmp.path()), &Silent).unwrap();
    assert_eq!(model.language(), Language::De);
    assert_eq!(saved_json(tmp.path())["language"], "de");
    let loaded = Perceptron::load(tmp.path()).unwrap();
    assert_eq!(loaded.language(), Language::De);
    assert_eq!(loaded.predict(&d), model.predict(&d));

    // Spanish is left out of the saved model, as before the field existed; a model without it is Spanish.
    let tmp = tempfile::tempdir().unwrap();
    let d = spanish();
    let (model, _) = train(&PerceptronConfig { epochs: 5, ..Default::default() }, &d, &d, Some(tmp.path()), &Silent).unwrap();
    assert_eq!(model.language(), Language::Es);
    assert!(saved_json(tmp.path()).get("language").is_none());
    assert_eq!(Perceptron::load(tmp.path()).unwrap().language(), Language::Es);
}

#[test]
fn a_set_language_is_used_as_given() {
    let d = german();
    let (model, _) = train(&PerceptronConfig { epochs: 5, language: Some(Language::Sv), ..Default::default() }, &d, &d, None, &Silent).unwrap();
    assert_eq!(model.language(), Language::Sv);
    // Stacked: both stages (and the jackknifed first stages) share the language.
    let (stacked, _) = train(&PerceptronConfig { epochs: 3, stack_folds: 3, ..Default::default() }, &d, &d, None, &Silent).unwrap();
    assert_eq!(stacked.language(), Language::De);
}
