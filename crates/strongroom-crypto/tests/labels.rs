//! Every `strongroom/vN/…` label in the workspace's library code is in the registry
//! (`strongroom_crypto::labels`) exactly once, and every registry entry is still used.
//! Code under `#[cfg(test)]` at the end of a file is not scanned: tests may spell labels to
//! check them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strongroom_crypto::labels::{LABELS, lookup};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The labels spelled in `code`: `strongroom/v<digits>/<name>` inside a string literal,
/// `<name>` made of lowercase letters, digits and dashes, ending at the closing quote or
/// at an escaped zero byte.
fn labels_in(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("\"strongroom/v") {
        let tail = &rest[i + 1..];
        let end = tail[1..].find('"').map_or(tail.len(), |e| e + 1);
        let literal = &tail[..end];
        let literal = literal.split("\\0").next().unwrap();
        let mut parts = literal.splitn(3, '/');
        let (_, version, name) = (parts.next(), parts.next(), parts.next());
        let is_label = version
            .is_some_and(|v| v.len() > 1 && v[1..].chars().all(|c| c.is_ascii_digit()))
            && name.is_some_and(|n| {
                !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            });
        if is_label {
            found.push(literal.to_owned());
        }
        rest = &tail[end.min(tail.len())..];
    }
    found
}

fn library_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[test]
fn every_label_is_registered_once_and_used() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(crates).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "the workspace's sources: {}", files.len());
    let registry_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/labels.rs");
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files.iter().filter(|f| **f != registry_file) {
        for label in labels_in(&library_code(file)) {
            used.entry(label)
                .or_default()
                .push(file.strip_prefix(crates).unwrap().display().to_string());
        }
    }
    let missing: Vec<_> = used
        .iter()
        .filter(|(label, _)| lookup(label).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "labels missing from the registry: {missing:?}"
    );
    let unused: Vec<_> = LABELS
        .iter()
        .filter(|l| !used.contains_key(l.label))
        .map(|l| l.label)
        .collect();
    assert!(
        unused.is_empty(),
        "registered labels no longer used: {unused:?}"
    );
    for (i, a) in LABELS.iter().enumerate() {
        assert!(
            LABELS[i + 1..].iter().all(|b| b.label != a.label),
            "{} registered twice",
            a.label
        );
        assert!(!a.uses.is_empty(), "{} has no use", a.label);
        let users = &used[a.label];
        assert!(
            users
                .iter()
                .any(|f| f.starts_with(&format!("{}/", a.crate_name))),
            "{} is registered for {} but used in {users:?}",
            a.label,
            a.crate_name
        );
    }
    let mut sorted: Vec<_> = LABELS.iter().map(|l| l.label).collect();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        LABELS.iter().map(|l| l.label).collect::<Vec<_>>(),
        "the registry is sorted"
    );
}

#[test]
fn the_scanner_finds_labels_and_nothing_else() {
    let code = r#"
        const A: &[u8] = b"strongroom/v1/grant\0";
        const B: &str = "strongroom/v2/dek";
        let c = "strongroom/vault-1"; // an entry name, not a label
        let d = "strongroom/v1"; // a prefix in an error text
        let e = "see strongroom/v1/stanza in the docs";
    "#;
    assert_eq!(
        labels_in(code),
        ["strongroom/v1/grant", "strongroom/v2/dek"]
    );
}
