//! The built-in demo corpus: short Spanish clinical-note-like documents with PHI spans, generated
//! here from templates written for this project and the surrogate vocabularies of `deid` (also
//! written for this project). Nothing is copied from any corpus; the documents only imitate the
//! shape of case reports (a header of patient data, a narrative, a signature block).

use corpus::{Document, Span};
use deid::vocab::{vocab, Vocab};
use deid::Language;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Builds a document piece by piece, recording PHI spans in character offsets.
struct Builder {
    text: String,
    chars: usize,
    spans: Vec<Span>,
}

impl Builder {
    fn new() -> Self {
        Builder { text: String::new(), chars: 0, spans: Vec::new() }
    }
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.chars += s.chars().count();
    }
    fn phi(&mut self, label: &str, s: &str) {
        let start = self.chars;
        self.push(s);
        self.spans.push(Span::new(start, self.chars, label));
    }
}

const MONTHS: [&str; 12] = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"];

const COMPLAINTS: [&str; 10] = [
    "dolor abdominal de tres días de evolución",
    "fiebre y tos productiva",
    "disnea de esfuerzo progresiva",
    "cefalea intensa y vómitos",
    "dolor torácico opresivo",
    "pérdida de peso no intencionada",
    "hematuria macroscópica indolora",
    "lesión cutánea pigmentada en la espalda",
    "dolor lumbar irradiado a la pierna izquierda",
    "astenia y anorexia",
];

const FINDINGS: [&str; 10] = [
    "La exploración física mostró un abdomen blando y depresible, doloroso a la palpación en fosa ilíaca derecha.",
    "En la analítica destacaba una leucocitosis con neutrofilia y una proteína C reactiva elevada.",
    "La radiografía de tórax evidenció un infiltrado alveolar en el lóbulo inferior derecho.",
    "La tomografía computarizada mostró una masa de bordes irregulares sin adenopatías.",
    "El electrocardiograma presentaba ritmo sinusal sin alteraciones de la repolarización.",
    "La ecografía reveló una lesión quística de contenido homogéneo.",
    "La biopsia confirmó el diagnóstico de carcinoma de células claras.",
    "Las constantes vitales se mantuvieron estables durante el ingreso.",
    "El estudio de coagulación y la bioquímica fueron normales.",
    "Se realizó una resonancia magnética que descartó compresión medular.",
];

const OUTCOMES: [&str; 8] = [
    "Se inició tratamiento antibiótico con buena respuesta clínica.",
    "Se realizó intervención quirúrgica sin complicaciones.",
    "Fue dado de alta con tratamiento analgésico y revisión en consultas externas.",
    "Tras el tratamiento la evolución fue favorable.",
    "Actualmente se encuentra asintomático y sin signos de recidiva.",
    "Se decidió seguimiento clínico y radiológico periódico.",
    "Precisó ingreso en la unidad de cuidados intensivos durante dos días.",
    "El paciente rechazó el tratamiento propuesto.",
];

fn pick<'a>(rng: &mut ChaCha8Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn digits(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

fn date(rng: &mut ChaCha8Rng) -> String {
    let (d, m, y) = (rng.random_range(1..=28), rng.random_range(1..=12), rng.random_range(1990..=2019));
    match rng.random_range(0..3) {
        0 => format!("{d:02}/{m:02}/{y}"),
        1 => format!("{d} de {} de {y}", MONTHS[m - 1]),
        _ => format!("{d:02}-{m:02}-{y}"),
    }
}

fn email(rng: &mut ChaCha8Rng, v: &Vocab, given: &str, surname: &str) -> String {
    let fold = |s: &str| -> String {
        s.to_lowercase()
            .chars()
            .map(|c| match c {
                'á' => 'a',
                'é' => 'e',
                'í' => 'i',
                'ó' => 'o',
                'ú' | 'ü' => 'u',
                'ñ' => 'n',
                c => c,
            })
            .filter(|c| c.is_ascii_alphanumeric())
            .collect()
    };
    format!("{}{}{}@{}", fold(given).chars().next().unwrap_or('x'), fold(surname), digits(rng, 2), pick(rng, &v.email_domains))
}

/// `n` demo documents from `seed`, with ids `demo-NNNN`.
pub fn demo_corpus(n: usize, seed: u64) -> Vec<Document> {
    let v = vocab(Language::Es);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let mut b = Builder::new();
            let female = rng.random_bool(0.5);
            let given = pick(&mut rng, if female { &v.given_female } else { &v.given_male });
            let (s1, s2) = (pick(&mut rng, &v.surnames), pick(&mut rng, &v.surnames));
            let age = rng.random_range(18..95);
            let city = pick(&mut rng, &v.cities);
            b.push("Datos del paciente.\nNombre: ");
            b.phi("NOMBRE_SUJETO_ASISTENCIA", given);
            b.push(".\nApellidos: ");
            b.phi("NOMBRE_SUJETO_ASISTENCIA", &format!("{s1} {s2}"));
            b.push(".\nNHC: ");
            b.phi("ID_SUJETO_ASISTENCIA", &digits(&mut rng, 7));
            b.push(".\nNASS: ");
            b.phi("ID_ASEGURAMIENTO", &format!("{} {}", digits(&mut rng, 2), digits(&mut rng, 8)));
            b.push(".\nDomicilio: ");
            b.phi("CALLE", &format!("C/ {} {}, {}º", pick(&mut rng, &v.street_names), rng.random_range(1..120), rng.random_range(1..9)));
            b.push(".\nLocalidad/ Provincia: ");
            b.phi("TERRITORIO", city);
            b.push(".\nCP: ");
            b.phi("TERRITORIO", &digits(&mut rng, 5));
            b.push(".\nDatos asistenciales.\nFecha de nacimiento: ");
            b.phi("FECHAS", &date(&mut rng));
            b.push(".\nPaís: ");
            b.phi("PAIS", "España");
            b.push(".\nEdad: ");
            b.phi("EDAD_SUJETO_ASISTENCIA", &format!("{age} años"));
            b.push(" Sexo: ");
            b.phi("SEXO_SUJETO_ASISTENCIA", if female { "M" } else { "H" });
            b.push(".\nFecha de Ingreso: ");
            b.phi("FECHAS", &date(&mut rng));
            b.push(".\nMédico: ");
            let (dg, ds1, ds2) = (pick(&mut rng, &v.given_male), pick(&mut rng, &v.surnames), pick(&mut rng, &v.surnames));
            b.phi("NOMBRE_PERSONAL_SANITARIO", &format!("{dg} {ds1} {ds2}"));
            b.push("  NºCol: ");
            b.phi("ID_TITULACION_PERSONAL_SANITARIO", &format!("{} {} {}", digits(&mut rng, 2), digits(&mut rng, 2), digits(&mut rng, 5)));
            b.push(".\nInforme clínico del paciente: ");
            b.phi("SEXO_SUJETO_ASISTENCIA", if female { "mujer" } else { "varón" });
            b.push(" de ");
            b.phi("EDAD_SUJETO_ASISTENCIA", &format!("{age} años"));
            b.push(" que acude al servicio de urgencias del ");
            b.phi("HOSPITAL", &format!("Hospital {}", pick(&mut rng, &v.hospital_names)));
            b.push(&format!(" por {}. ", pick(&mut rng, &COMPLAINTS)));
            if rng.random_bool(0.5) {
                b.push("Como antecedentes refería que su ");
                b.phi("FAMILIARES_SUJETO_ASISTENCIA", pick(&mut rng, &["madre", "padre", "hermano", "hermana", "abuelo"]));
                b.push(" había padecido una enfermedad similar. ");
            }
            for _ in 0..rng.random_range(2..5) {
                b.push(pick(&mut rng, &FINDINGS));
                b.push(" ");
            }
            b.push("El ");
            b.phi("FECHAS", &date(&mut rng));
            b.push(" ");
            b.push(pick(&mut rng, &OUTCOMES));
            b.push("\n\nRemitido por: ");
            b.phi("NOMBRE_PERSONAL_SANITARIO", &format!("{dg} {ds1} {ds2}"));
            b.push(". ");
            b.phi("HOSPITAL", &format!("Hospital {}", pick(&mut rng, &v.hospital_names)));
            b.push(". ");
            b.phi("CALLE", &format!("Avda. {} {}", pick(&mut rng, &v.street_names), rng.random_range(1..200)));
            b.push(". ");
            b.phi("TERRITORIO", &digits(&mut rng, 5));
            b.push(" ");
            b.phi("TERRITORIO", pick(&mut rng, &v.cities));
            b.push(". ");
            b.phi("PAIS", "España");
            b.push(".\nCorreo electrónico: ");
            b.phi("CORREO_ELECTRONICO", &email(&mut rng, v, dg, ds1));
            b.push("\n");
            Document { id: format!("demo-{i:04}"), text: b.text, spans: b.spans }
        })
        .collect()
}

/// Writes the demo corpus (`OUT/data/{train,dev,test}.jsonl`, a 60/20/20 split) and the demo
/// config (`OUT/demo.toml`: tiny models, a few samples per prompt), and returns the config path.
pub fn write_demo(out: &std::path::Path, documents: usize, seed: u64) -> anyhow::Result<std::path::PathBuf> {
    anyhow::ensure!(documents >= 10, "the demo needs at least 10 documents");
    let docs = demo_corpus(documents, seed);
    let (n_train, n_dev) = (documents * 6 / 10, documents * 2 / 10);
    let data = out.join("data");
    let write = |name: &str, d: &[Document]| corpus::write_corpus(&data.join(name), None, d).map_err(|e| anyhow::anyhow!(e));
    write("train.jsonl", &docs[..n_train])?;
    write("dev.jsonl", &docs[n_train..n_train + n_dev])?;
    write("test.jsonl", &docs[n_train + n_dev..])?;
    let config = out.join("demo.toml");
    fsutil::atomic_write(&config, DEMO_CONFIG.replace("{seed}", &seed.to_string()).as_bytes()).map_err(|e| anyhow::anyhow!(e))?;
    Ok(config)
}

/// The demo's settings: the paper's protocol with the fast models (perceptron NER, a tiny GPT-2),
/// 30 samples per prompt (about 3× the training notes).
pub const DEMO_CONFIG: &str = r#"# synthdeid demo: the paper's protocol on the built-in corpus: the feature perceptron as both NER models (the
# fast floor; configs/meddocan-gemma.toml has the transformer recipe and a pretrained generator), a tiny GPT-2.
[run]
name = "demo (built-in corpus, perceptron NER, tiny GPT-2)"
seed = {seed}

[data]
train = "data/train.jsonl"
dev = "data/dev.jsonl"
test = "data/test.jsonl"
prompt_ratio = 0.1

[models]
annotator = "perceptron"
synthetic_ner = "perceptron"

[generator]
generator = "gpt2"
preset = "tiny"
epochs = 60
block_size = 256
batch_size = 8
lr = 0.003

[generation]
prompt_words = 3
samples_per_prompt = 30
max_new_tokens = 500
top_p = 0.95
temperature = 1.0

[audit]
ngram = 5
nearest = 5
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_corpus_is_seeded_valid_and_token_aligned() {
        let docs = demo_corpus(40, 1);
        assert_eq!(docs, demo_corpus(40, 1));
        assert_ne!(docs, demo_corpus(40, 2));
        let st = corpus::stats::stats(&docs);
        assert_eq!(st.spans_not_token_aligned, vec![]);
        assert_eq!(st.spans_cut_by_sentences, vec![]);
        for d in &docs {
            for s in &d.spans {
                corpus::validate::check_span(s, d.char_len()).unwrap();
            }
        }
        assert!(st.spans_per_label.len() >= 12);
    }
}
