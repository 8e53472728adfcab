//! Every `strongroom/vN/…` label in the workspace's library code is in the registry
//! (`strongroom_crypto::labels`) exactly once, and every registry entry is still used.
//! Code under `#[cfg(test)]` at the end of a file is not scanned: tests may spell labels to
//! check them.
//!
//! The written specification stays in step: `docs/spec/labels.md` names exactly the
//! registered labels, every page of `docs/spec/` is linked from its index and every link
//! there resolves, and `fuzz/README.md` lists every fuzz target.

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

/// The repository root (two levels above this crate).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `strongroom/v<digits>/<name>` labels written between backticks in a Markdown text.
fn labels_in_markdown(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            let mut parts = span.splitn(3, '/');
            parts.next() == Some("strongroom")
                && parts
                    .next()
                    .is_some_and(|v| v.len() > 1 && v[1..].chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_labels_page_lists_exactly_the_registry() {
    let path = repo_root().join("docs/spec/labels.md");
    let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mentioned = labels_in_markdown(&page);
    let missing: Vec<_> = LABELS
        .iter()
        .filter(|l| !mentioned.iter().any(|m| m == l.label))
        .map(|l| l.label)
        .collect();
    assert!(
        missing.is_empty(),
        "registered labels missing from docs/spec/labels.md: {missing:?}"
    );
    let unknown: Vec<_> = mentioned.iter().filter(|m| lookup(m).is_none()).collect();
    assert!(
        unknown.is_empty(),
        "docs/spec/labels.md names labels that are not registered: {unknown:?}"
    );
}

/// The relative Markdown links of `text` (`[text](target)`), without any `#fragment`.
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        let tail = &rest[i + 2..];
        let end = tail.find(')').unwrap_or(tail.len());
        let target = tail[..end].split('#').next().unwrap_or_default();
        if !target.is_empty() && !target.contains("://") && !target.starts_with('<') {
            out.push(target.to_owned());
        }
        rest = &tail[end..];
    }
    out
}

#[test]
fn every_spec_page_is_indexed_and_every_link_resolves() {
    let dir = repo_root().join("docs/spec");
    let index = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let indexed = relative_links(&index);
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    pages.sort();
    assert!(pages.len() >= 10, "the spec pages: {pages:?}");
    let unindexed: Vec<_> = pages.iter().filter(|p| !indexed.contains(p)).collect();
    assert!(
        unindexed.is_empty(),
        "pages not linked from docs/spec/README.md: {unindexed:?}"
    );
    for page in pages.iter().map(String::as_str).chain(["README.md"]) {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        let broken: Vec<_> = relative_links(&text)
            .into_iter()
            .filter(|l| !dir.join(l).is_file())
            .collect();
        assert!(
            broken.is_empty(),
            "docs/spec/{page} links to missing files: {broken:?}"
        );
    }
}

#[test]
fn the_fuzz_readme_lists_every_fuzz_target() {
    let fuzz = repo_root().join("fuzz");
    let readme = std::fs::read_to_string(fuzz.join("README.md")).unwrap();
    let mut targets: Vec<String> = std::fs::read_dir(fuzz.join("fuzz_targets"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    targets.sort();
    assert!(!targets.is_empty());
    let unlisted: Vec<_> = targets
        .iter()
        .filter(|t| !readme.contains(&format!("`{t}`")))
        .collect();
    assert!(
        unlisted.is_empty(),
        "fuzz targets missing from fuzz/README.md: {unlisted:?}"
    );
}

#[test]
fn the_markdown_helpers_find_labels_and_links() {
    let text =
        "see `strongroom/v1/stanza` and `strongroom/vault-1`, [a](a.md#x), [w](https://x/y.md)";
    assert_eq!(labels_in_markdown(text), ["strongroom/v1/stanza"]);
    assert_eq!(relative_links(text), ["a.md"]);
}
