//! Replays the fuzzers' committed corpora on stable Rust: every input of
//! `fuzz/corpus/<target>/` and of `fuzz/regressions/<target>/` (crash reproducers, when the
//! directory exists) goes through the target's body in `scimgate::fuzz_targets`, which
//! panics on a bug. A missing or empty corpus fails the test rather than passing silently.
//!
//! Run: `cargo test --test fuzz_corpus -- --nocapture` (prints the count per target).

use std::fs;
use std::path::{Path, PathBuf};

/// Every file directly in `dir`, sorted; empty when the directory does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = inputs(&fuzz.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target}/ is missing or empty: the replay would prove nothing"
    );
    let regressions = inputs(&fuzz.join("regressions").join(target));
    for path in corpus.iter().chain(&regressions) {
        let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Catch the panic so that the failure names the input that caused it.
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} panicked", path.display());
    }
    println!(
        "{target}: replayed {} corpus inputs and {} regression inputs",
        corpus.len(),
        regressions.len()
    );
}

#[test]
fn filter_corpus() {
    replay("filter", scimgate::fuzz_targets::filter);
}

#[test]
fn patch_corpus() {
    replay("patch", scimgate::fuzz_targets::patch);
}

#[test]
fn normalize_corpus() {
    replay("normalize", scimgate::fuzz_targets::normalize);
}

#[test]
fn path_template_corpus() {
    replay("path_template", scimgate::fuzz_targets::path_template);
}

#[test]
fn config_corpus() {
    replay("config", scimgate::fuzz_targets::config);
}
