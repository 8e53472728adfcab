//! Export, import and environment injection.
//!
//! Exports are encrypted by default: to age recipients — hybrid post-quantum `age1pq1…`
//! (`mlkem768x25519`, see [`HybridRecipient`](crate::HybridRecipient)) or classical
//! `age1…` X25519 keys — or to a passphrase (age's scrypt recipient), as standard age files
//! that age tools decrypt. A file goes to hybrid or to classical recipients, never both.
//! Plaintext exports exist only as an explicit target. [`decrypt_age`] opens an age file
//! with identity-file text (`AGE-SECRET-KEY-PQ-1…` and `AGE-SECRET-KEY-1…` lines) for
//! import.
//!
//! Formats:
//! - dotenv: `NAME="value"` lines of one namespace; names must be valid environment
//!   variable names (`[A-Za-z_][A-Za-z0-9_]*`); values are double-quoted with `\\`, `\"`,
//!   `\n`, `\r`, `\t` and `\$` escaped.
//! - JSON: `{"format":"strongroom-export","version":1,"secrets":[{"namespace":…,"name":…,
//!   "value":…}]}` where `value` is a string for UTF-8 values, else
//!   `{"base64":"…"}`.

use std::io::Write;
use std::str::FromStr;

use age::secrecy::SecretString;
use serde::{Deserialize, Serialize};
use strongroom_crypto::SecretBytes;
use zeroize::{Zeroize, Zeroizing};

use crate::audit::Action;
use crate::records::{NewSecret, validate_name, validate_namespace};
use crate::vault::Vault;
use crate::{TransferOp, TransferProblem, VaultError};

/// Export and import formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// `NAME="value"` lines (one namespace).
    Dotenv,
    /// A JSON document (any namespaces).
    Json,
}

/// Where an export goes.
pub enum ExportTarget {
    /// An age file encrypted to these recipients: `age1pq1…` (hybrid post-quantum) or
    /// `age1…` (X25519) strings, all of one kind.
    AgeRecipients(Vec<String>),
    /// An age file encrypted to a passphrase (scrypt).
    AgePassphrase(SecretString),
    /// Plaintext. Only for deliberate use: the output holds every secret in the clear.
    Plaintext,
}

impl core::fmt::Debug for ExportTarget {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ExportTarget::AgeRecipients(r) => write!(f, "AgeRecipients({} recipients)", r.len()),
            ExportTarget::AgePassphrase(_) => f.write_str("AgePassphrase(<redacted>)"),
            ExportTarget::Plaintext => f.write_str("Plaintext"),
        }
    }
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportReport {
    /// Secrets exported.
    pub secrets: usize,
}

/// What an import wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Secrets in the input.
    pub secrets: usize,
    /// New versions written.
    pub written: usize,
    /// Secrets whose value was already the imported one (no new version).
    pub unchanged: usize,
}

fn transfer(op: TransferOp, kind: TransferProblem, detail: impl Into<String>) -> VaultError {
    VaultError::transfer(op, kind, detail)
}

/// Whether `name` is a valid environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Serialize, Deserialize)]
struct JsonDoc {
    format: String,
    version: u32,
    secrets: Vec<JsonSecret>,
}

#[derive(Serialize, Deserialize)]
struct JsonSecret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
    value: JsonValue,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum JsonValue {
    Text(String),
    Binary { base64: String },
}

impl Drop for JsonSecret {
    fn drop(&mut self) {
        match &mut self.value {
            JsonValue::Text(s) | JsonValue::Binary { base64: s } => s.zeroize(),
        }
    }
}

struct Plain {
    namespace: String,
    name: String,
    value: SecretBytes,
}

impl Vault {
    fn collect(&self, namespace: Option<&str>) -> Result<Vec<Plain>, VaultError> {
        let secrets = match namespace {
            Some(ns) => self.load(ns)?,
            None => self.load_all()?,
        };
        let mut out: Vec<Plain> = secrets
            .into_iter()
            .map(|s| {
                let meta = s.meta().clone();
                Plain {
                    namespace: meta.namespace,
                    name: meta.name,
                    value: s.into_value(),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(out)
    }

    /// Exports the secrets of `namespace` (or of every namespace, JSON only) in `format`
    /// to `target`, writing the result to `out`. Recorded in the audit log.
    pub fn export(
        &self,
        namespace: Option<&str>,
        format: ExportFormat,
        target: ExportTarget,
        out: &mut dyn Write,
    ) -> Result<ExportReport, VaultError> {
        let secrets = self.collect(namespace)?;
        let plain = match format {
            ExportFormat::Dotenv => {
                if namespace.is_none() {
                    return Err(transfer(
                        TransferOp::Export,
                        TransferProblem::Request,
                        "dotenv holds one namespace: name it",
                    ));
                }
                encode_dotenv(&secrets)?
            }
            ExportFormat::Json => encode_json(&secrets)?,
        };
        let kind = match &target {
            ExportTarget::AgeRecipients(_) => "age-recipients",
            ExportTarget::AgePassphrase(_) => "age-passphrase",
            ExportTarget::Plaintext => "plaintext",
        };
        // Recipients are checked first, then the export is audited, then written: no
        // export leaves without its entry, and no entry is made for a refused one.
        let recipients = match &target {
            ExportTarget::AgeRecipients(list) => parse_recipients(list)?,
            _ => Vec::new(),
        };
        let n = secrets.len();
        let detail = format!(
            "format={} target={kind} count={n}{}",
            match format {
                ExportFormat::Dotenv => "dotenv",
                ExportFormat::Json => "json",
            },
            if namespace.is_some() {
                " scope=namespace"
            } else {
                " scope=all"
            }
        );
        self.audit_only(Action::Export, &[], detail)?;
        let io = |e: std::io::Error| {
            transfer(
                TransferOp::Export,
                TransferProblem::Output,
                format!("writing the output: {e}"),
            )
        };
        let encryptor = match target {
            ExportTarget::Plaintext => {
                out.write_all(&plain).map_err(io)?;
                None
            }
            ExportTarget::AgeRecipients(_) => Some(
                age::Encryptor::with_recipients(recipients.iter().map(|r| &**r)).map_err(|e| {
                    transfer(TransferOp::Export, TransferProblem::Key, e.to_string())
                })?,
            ),
            ExportTarget::AgePassphrase(pass) => Some(age::Encryptor::with_user_passphrase(pass)),
        };
        if let Some(enc) = encryptor {
            let mut w = enc.wrap_output(out).map_err(io)?;
            w.write_all(&plain).map_err(io)?;
            w.finish().map_err(io)?;
        }
        Ok(ExportReport { secrets: n })
    }

    /// Imports secrets from a dotenv or JSON document into `namespace` (JSON entries that
    /// name their own namespace keep it), all or nothing: the document is parsed
    /// completely, then every secret is written in one commit ([`Vault::put_many`]). A
    /// secret already holding the imported value gets no new version, so running the same
    /// import again changes nothing; a secret given twice in the input is refused with
    /// both places (dotenv line numbers, JSON entry numbers).
    pub fn import(
        &self,
        namespace: &str,
        format: ExportFormat,
        input: &[u8],
    ) -> Result<ImportReport, VaultError> {
        validate_namespace(namespace)?;
        self.require_writer()?;
        // (namespace, name, value, where it is in the input)
        let entries: Vec<(String, String, SecretBytes, String)> = match format {
            ExportFormat::Dotenv => parse_dotenv(input)?
                .into_iter()
                .map(|(k, v, line)| (namespace.to_owned(), k, v, format!("line {line}")))
                .collect(),
            ExportFormat::Json => parse_json(input, namespace)?
                .into_iter()
                .enumerate()
                .map(|(i, (ns, k, v))| (ns, k, v, format!("entry {}", i + 1)))
                .collect(),
        };
        let mut first_at = std::collections::HashMap::with_capacity(entries.len());
        let mut duplicates = Vec::new();
        for (ns, name, _, at) in &entries {
            validate_namespace(ns)?;
            validate_name(name)?;
            let first = *first_at
                .entry((ns.as_str(), name.as_str()))
                .or_insert(at.as_str());
            if first != at {
                duplicates.push(format!("{ns}/{name} ({first} and {at})"));
            }
        }
        if !duplicates.is_empty() {
            return Err(transfer(
                TransferOp::Import,
                TransferProblem::Input,
                format!(
                    "the input gives these secrets more than once: {}; keep one of each (nothing was imported)",
                    duplicates.join(", ")
                ),
            ));
        }
        let secrets: Vec<NewSecret<'_>> = entries
            .iter()
            .map(|(ns, name, value, _)| NewSecret {
                namespace: ns,
                name,
                value: value.expose_secret(),
            })
            .collect();
        let report = self.put_many(&secrets)?;
        Ok(ImportReport {
            secrets: entries.len(),
            written: report.written.len(),
            unchanged: report.unchanged,
        })
    }

    /// The secrets of `namespace` as environment variables for a child process (`run`).
    /// Every name must be a valid environment variable name; the error lists the ones that
    /// are not (never a value).
    pub fn env_vars(&self, namespace: &str) -> Result<Vec<(String, SecretBytes)>, VaultError> {
        env_vars_of(namespace, self.load(namespace)?)
    }
}

/// The secrets `secrets` of `namespace` as environment variables, sorted by name; an error
/// names every secret whose name is not a variable name (never a value).
pub(crate) fn env_vars_of(
    namespace: &str,
    secrets: Vec<crate::Secret>,
) -> Result<Vec<(String, SecretBytes)>, VaultError> {
    let mut vars: Vec<(String, SecretBytes)> = secrets
        .into_iter()
        .map(|s| (s.meta().name.clone(), s.into_value()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let bad: Vec<&str> = vars
        .iter()
        .filter(|(name, _)| !is_env_name(name))
        .map(|(name, _)| name.as_str())
        .collect();
    if !bad.is_empty() {
        return Err(VaultError::invalid(
            "environment variable name",
            format!(
                "{bad:?} in {namespace} are not valid names ([A-Za-z_][A-Za-z0-9_]*); rename them or use another namespace"
            ),
        ));
    }
    Ok(vars)
}

/// Parses `--age-recipient` values: all hybrid (`age1pq1…`) or all X25519 (`age1…`).
fn parse_recipients(list: &[String]) -> Result<Vec<Box<dyn age::Recipient>>, VaultError> {
    if list.is_empty() {
        return Err(transfer(
            TransferOp::Export,
            TransferProblem::Request,
            "no age recipient given",
        ));
    }
    let hybrid = list
        .iter()
        .filter(|r| crate::age_pq::is_hybrid_recipient(r))
        .count();
    if hybrid != 0 && hybrid != list.len() {
        return Err(transfer(
            TransferOp::Export,
            TransferProblem::Request,
            "post-quantum recipients (age1pq1…) cannot be mixed with X25519 recipients (age1…) in one file: the file would only be as strong as its classical stanzas; export once per kind",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, r)| -> Result<Box<dyn age::Recipient>, VaultError> {
            if hybrid != 0 {
                let r = crate::HybridRecipient::from_str(r).map_err(|why| {
                    transfer(
                        TransferOp::Export,
                        TransferProblem::Key,
                        format!("age recipient #{}: {why}", i + 1),
                    )
                })?;
                Ok(Box::new(r))
            } else {
                let r = age::x25519::Recipient::from_str(r.trim()).map_err(|_| {
                    transfer(
                        TransferOp::Export,
                        TransferProblem::Key,
                        format!(
                            "age recipient #{} is not a valid recipient (age1pq1… or age1…)",
                            i + 1
                        ),
                    )
                })?;
                Ok(Box::new(r))
            }
        })
        .collect()
}

/// Decrypts an age file (binary or armored) with the identities of an age identity file:
/// one per line, `AGE-SECRET-KEY-PQ-1…` (hybrid `mlkem768x25519`) or `AGE-SECRET-KEY-1…`
/// (X25519); blank lines and `#` comments are skipped. Errors name a line by its number,
/// never by its text.
pub fn decrypt_age(
    input: &[u8],
    identity_file: &SecretString,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    use age::secrecy::ExposeSecret as _;
    use std::io::Read as _;
    let mut identities: Vec<Box<dyn age::Identity>> = Vec::new();
    for (i, line) in identity_file.expose_secret().lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("AGE-SECRET-KEY-PQ-1") {
            let id = crate::HybridIdentity::from_str(line).map_err(|why| {
                transfer(
                    TransferOp::Import,
                    TransferProblem::Key,
                    format!("identity file line {}: {why}", i + 1),
                )
            })?;
            identities.push(Box::new(id));
        } else if upper.starts_with("AGE-SECRET-KEY-1") {
            let id = age::x25519::Identity::from_str(line).map_err(|_| {
                transfer(
                    TransferOp::Import,
                    TransferProblem::Key,
                    format!(
                        "identity file line {}: not a valid AGE-SECRET-KEY-1… identity",
                        i + 1
                    ),
                )
            })?;
            identities.push(Box::new(id));
        } else {
            return Err(transfer(
                TransferOp::Import,
                TransferProblem::Key,
                format!(
                    "identity file line {}: not an age identity (AGE-SECRET-KEY-PQ-1… or AGE-SECRET-KEY-1…)",
                    i + 1
                ),
            ));
        }
    }
    if identities.is_empty() {
        return Err(transfer(
            TransferOp::Import,
            TransferProblem::Key,
            "the identity file holds no age identity",
        ));
    }
    let fail = |e: age::DecryptError| {
        let why = match e {
            age::DecryptError::NoMatchingKeys => {
                "none of the identities opens this age file".to_owned()
            }
            age::DecryptError::InvalidHeader | age::DecryptError::InvalidMac => {
                "the age file's header is invalid or was modified".to_owned()
            }
            age::DecryptError::UnknownFormat => {
                "not an age file, or its header is malformed".to_owned()
            }
            other => format!("cannot decrypt the age file: {other}"),
        };
        transfer(TransferOp::Import, TransferProblem::Decrypt, why)
    };
    let reader = age::armor::ArmoredReader::new(input);
    let decryptor = age::Decryptor::new_buffered(reader).map_err(fail)?;
    let mut r = decryptor
        .decrypt(identities.iter().map(|i| &**i))
        .map_err(fail)?;
    let mut out = Zeroizing::new(Vec::new());
    r.read_to_end(&mut out).map_err(|e| {
        transfer(
            TransferOp::Import,
            TransferProblem::Decrypt,
            format!("the age payload does not decrypt: {e}"),
        )
    })?;
    Ok(out)
}

/// Parses an import document (fuzzing entry point).
#[cfg(fuzzing)]
pub(crate) fn fuzz_parse(format: ExportFormat, data: &[u8]) -> Result<usize, VaultError> {
    Ok(match format {
        ExportFormat::Dotenv => parse_dotenv(data)?.len(),
        ExportFormat::Json => parse_json(data, "fuzz")?.len(),
    })
}

fn encode_dotenv(secrets: &[Plain]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    // An escape at most doubles a byte: with this capacity the buffer never reallocates,
    // so no copy of the plaintext is left in freed memory.
    let bound: usize = secrets
        .iter()
        .map(|s| s.name.len() + 4 + 2 * s.value.len())
        .sum();
    let mut out = Zeroizing::new(Vec::with_capacity(bound));
    for s in secrets {
        if !is_env_name(&s.name) {
            return Err(transfer(
                TransferOp::Export,
                TransferProblem::Request,
                format!("{:?} is not a dotenv name; export as JSON", s.name),
            ));
        }
        let value = core::str::from_utf8(s.value.expose_secret()).map_err(|_| {
            transfer(
                TransferOp::Export,
                TransferProblem::Request,
                format!("{:?} is not UTF-8; export as JSON", s.name),
            )
        })?;
        out.extend_from_slice(s.name.as_bytes());
        out.extend_from_slice(b"=\"");
        for c in value.chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '"' => out.extend_from_slice(b"\\\""),
                '\n' => out.extend_from_slice(b"\\n"),
                // Tabs and carriage returns stay literal inside the quotes: dotenvy and
                // docker compose know no `\t` or `\r` escape.
                '$' => out.extend_from_slice(b"\\$"),
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        out.extend_from_slice(b"\"\n");
    }
    Ok(out)
}

fn encode_json(secrets: &[Plain]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    use base64::Engine as _;
    let doc = JsonDoc {
        format: "strongroom-export".into(),
        version: 1,
        secrets: secrets
            .iter()
            .map(|s| JsonSecret {
                namespace: Some(s.namespace.clone()),
                name: s.name.clone(),
                value: match core::str::from_utf8(s.value.expose_secret()) {
                    Ok(t) => JsonValue::Text(t.to_owned()),
                    Err(_) => JsonValue::Binary {
                        base64: base64::engine::general_purpose::STANDARD
                            .encode(s.value.expose_secret()),
                    },
                },
            })
            .collect(),
    };
    // JSON escaping at most sextuples a byte (`\u00XX`) and base64 adds a third, so with
    // this capacity the buffer never reallocates and leaves no plaintext copy behind.
    let bound = 64
        + secrets
            .iter()
            .map(|s| 96 + 6 * (s.namespace.len() + s.name.len() + s.value.len()))
            .sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(bound));
    serde_json::to_writer_pretty(&mut *out, &doc)
        .map_err(|e| transfer(TransferOp::Export, TransferProblem::Output, e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

/// Parses dotenv text: `NAME=value`, optional `export ` prefix, `#` comments, blank
/// lines; values unquoted (trimmed, up to a ` #` comment), single-quoted (literal) or
/// double-quoted (with `\\ \" \n \r \t \$` escapes). A quoted value may span lines (a
/// PEM key as dotenvy, python-dotenv and docker compose read it); its line breaks are kept
/// as `\n`. No variable substitution is done. Returns each entry with its line number.
fn parse_dotenv(input: &[u8]) -> Result<Vec<(String, SecretBytes, usize)>, VaultError> {
    let text = core::str::from_utf8(input).map_err(|_| {
        transfer(
            TransferOp::Import,
            TransferProblem::Input,
            "the dotenv input is not UTF-8",
        )
    })?;
    let mut out = Vec::new();
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate();
    while let Some((i, raw)) = lines.next() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let (name, rest) = line.split_once('=').ok_or_else(|| {
            transfer(
                TransferOp::Import,
                TransferProblem::Input,
                format!("line {line_no}: expected NAME=value"),
            )
        })?;
        let name = name.trim();
        if !is_env_name(name) {
            return Err(transfer(
                TransferOp::Import,
                TransferProblem::Input,
                format!("line {line_no}: {name:?} is not a valid name"),
            ));
        }
        let rest = rest.trim_start();
        let value = if let Some(quote @ ('"' | '\'')) = rest.chars().next() {
            // Gather lines until the closing quote (in a buffer that never reallocates,
            // so no partial copy of the value is left in freed memory).
            let mut body = Zeroizing::new(String::with_capacity(text.len()));
            body.push_str(&rest[1..]);
            let end = loop {
                if let Some(end) = closing_quote(&body, quote) {
                    break end;
                }
                let Some((_, next)) = lines.next() else {
                    let kind = if quote == '"' { "double" } else { "single" };
                    return Err(transfer(
                        TransferOp::Import,
                        TransferProblem::Input,
                        format!(
                            "line {line_no}: unterminated {kind} quote (the value of {name} never closes)"
                        ),
                    ));
                };
                body.push('\n');
                body.push_str(next);
            };
            let tail = body[end + 1..].trim();
            if !(tail.is_empty() || tail.starts_with('#')) {
                return Err(transfer(
                    TransferOp::Import,
                    TransferProblem::Input,
                    format!("line {line_no}: text after the closing quote of {name}"),
                ));
            }
            if quote == '"' {
                unescape_double(&body[..end])
            } else {
                body[..end].to_owned()
            }
        } else {
            let v = rest.find(" #").map_or(rest, |i| &rest[..i]);
            v.trim_end().to_owned()
        };
        out.push((
            name.to_owned(),
            SecretBytes::from(value.into_bytes()),
            line_no,
        ));
    }
    Ok(out)
}

/// The byte index of the quote closing a value that began with `quote` (`body` follows
/// the opening quote); in double quotes a backslash escapes the next character.
fn closing_quote(body: &str, quote: char) -> Option<usize> {
    if quote == '\'' {
        return body.find('\'');
    }
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// The value of a double-quoted body: `\\ \" \n \r \t \$` escapes; any other backslash
/// stays as written.
fn unescape_double(body: &str) -> String {
    // Unescaping only shrinks: this capacity never reallocates.
    let mut v = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => v.push('\n'),
                Some('r') => v.push('\r'),
                Some('t') => v.push('\t'),
                Some(c @ ('\\' | '"' | '$')) => v.push(c),
                Some(c) => {
                    v.push('\\');
                    v.push(c);
                }
                None => v.push('\\'),
            },
            c => v.push(c),
        }
    }
    v
}

fn parse_json(
    input: &[u8],
    default_ns: &str,
) -> Result<Vec<(String, String, SecretBytes)>, VaultError> {
    use base64::Engine as _;
    let doc: JsonDoc = serde_json::from_slice(input).map_err(|e| {
        transfer(
            TransferOp::Import,
            TransferProblem::Input,
            format!(
                "not a strongroom JSON export (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    if doc.format != "strongroom-export" || doc.version != 1 {
        return Err(transfer(
            TransferOp::Import,
            TransferProblem::Input,
            "not a strongroom JSON export version 1",
        ));
    }
    let mut out = Vec::with_capacity(doc.secrets.len());
    for s in &doc.secrets {
        let value = match &s.value {
            JsonValue::Text(t) => t.as_bytes().to_vec(),
            JsonValue::Binary { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(|_| {
                    transfer(
                        TransferOp::Import,
                        TransferProblem::Input,
                        format!("{:?}: invalid base64 value", s.name),
                    )
                })?,
        };
        out.push((
            s.namespace.clone().unwrap_or_else(|| default_ns.to_owned()),
            s.name.clone(),
            SecretBytes::from(value),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_round_trip_and_rules() {
        let secrets = vec![
            Plain {
                namespace: "n".into(),
                name: "A".into(),
                value: SecretBytes::from(b"plain".to_vec()),
            },
            Plain {
                namespace: "n".into(),
                name: "B_2".into(),
                value: SecretBytes::from("quo\"te \\ $HOME\nline2\ttab".as_bytes().to_vec()),
            },
            Plain {
                namespace: "n".into(),
                name: "EMPTY".into(),
                value: SecretBytes::from(Vec::new()),
            },
        ];
        let text = encode_dotenv(&secrets).unwrap();
        let back = parse_dotenv(&text).unwrap();
        assert_eq!(back.len(), 3);
        for (s, (n, v, _)) in secrets.iter().zip(&back) {
            assert_eq!(&s.name, n);
            assert_eq!(s.value.expose_secret(), v.expose_secret());
        }
        let parsed =
            parse_dotenv(b"# c\n\nexport X=1 # comment\nY='lit $eral \\n'\nZ=\"a\" # ok\n")
                .unwrap();
        let vals: Vec<(&str, &[u8])> = parsed
            .iter()
            .map(|(k, v, _)| (k.as_str(), v.expose_secret()))
            .collect();
        assert_eq!(
            vals,
            [("X", &b"1"[..]), ("Y", b"lit $eral \\n"), ("Z", b"a")]
        );
        let lines: Vec<usize> = parsed.iter().map(|e| e.2).collect();
        assert_eq!(lines, [3, 4, 5]);
        for bad in [
            &b"NOEQUALS"[..],
            b"1X=2",
            b"A=\"open",
            b"A='open",
            b"A=\"x\" junk",
        ] {
            assert!(
                parse_dotenv(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let bad_name = vec![Plain {
            namespace: "n".into(),
            name: "has space".into(),
            value: SecretBytes::from(b"v".to_vec()),
        }];
        assert!(encode_dotenv(&bad_name).is_err());
        // errors never echo a value
        let e = parse_dotenv(b"A=\"s3cr3t-value").unwrap_err().to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    /// Values spanning lines, as dotenvy, python-dotenv and docker compose read them (a
    /// PEM key in double quotes, literal single quotes, CRLF files), and line numbers that
    /// count the continuation lines.
    /// The import reads .env files as dotenvy (the reference Rust reader, as used by
    /// docker compose-style tools) does, on the forms people write: comments, `export`,
    /// blank lines, quotes of both kinds, escapes, values spanning lines, CRLF. (strongroom
    /// never expands `$VAR`, so the corpus has none.)
    #[test]
    fn dotenv_reads_what_dotenvy_reads() {
        let corpus = [
            "A=1\nB=two\n",
            "# comment\n\nexport TOKEN=abc123\n",
            "Q=\"double quoted\"\nS='single quoted'\n",
            "ESC=\"line\\nbreak \\\"quote\\\" back\\\\slash\"\n",
            "LIT='no \\n escapes here'\n",
            "PEM=\"-----BEGIN KEY-----\nMIIBxyz\n-----END KEY-----\"\nNEXT=after\n",
            "SINGLE='first\nsecond'\n",
            "CRLF=yes\r\nOTHER=\"q\"\r\n",
            "TRAIL=value # a comment\n",
            "EMPTY=\nEMPTYQ=\"\"\n",
            "URL=https://user@host:5432/db?x=1&y=2\n",
            "EQ=a=b=c\n",
        ];
        for input in corpus {
            let ours: Vec<(String, Vec<u8>)> = parse_dotenv(input.as_bytes())
                .unwrap_or_else(|e| panic!("{input:?}: {e}"))
                .into_iter()
                .map(|(k, v, _)| (k, v.expose_secret().to_vec()))
                .collect();
            let theirs: Vec<(String, Vec<u8>)> = dotenvy::from_read_iter(input.as_bytes())
                .map(|r| {
                    let (k, v) = r.unwrap_or_else(|e| panic!("dotenvy on {input:?}: {e}"));
                    (k, v.into_bytes())
                })
                .collect();
            assert_eq!(ours, theirs, "{input:?}");
        }
        // And it reads what export writes, whatever the value holds.
        let tricky = "quo\"te \\ $HOME ${X} \nline2\ttab\r\nend\\";
        let secrets = [Plain {
            namespace: "n".into(),
            name: "TRICKY".into(),
            value: SecretBytes::from(tricky.as_bytes().to_vec()),
        }];
        let text = encode_dotenv(&secrets).unwrap();
        let read: Vec<(String, String)> = dotenvy::from_read_iter(&text[..])
            .map(Result::unwrap)
            .collect();
        assert_eq!(read, [("TRICKY".to_owned(), tricky.to_owned())]);
        let ours = parse_dotenv(&text).unwrap();
        assert_eq!(ours[0].1.expose_secret(), tricky.as_bytes());
    }

    #[test]
    fn dotenv_multiline_values() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"; // pragma: allowlist secret
        let input = format!(
            "TLS_KEY=\"{pem}\"\nNEXT=1\nexport LIT='a\n  b $X\\n'\r\nQ=\"say \\\"hi\\\"\nthere\" # c\nLAST=z"
        );
        let parsed = parse_dotenv(input.as_bytes()).unwrap();
        let got: Vec<(&str, &[u8], usize)> = parsed
            .iter()
            .map(|(k, v, l)| (k.as_str(), v.expose_secret(), *l))
            .collect();
        assert_eq!(
            got,
            [
                ("TLS_KEY", pem.as_bytes(), 1),
                ("NEXT", &b"1"[..], 4),
                ("LIT", b"a\n  b $X\\n", 5),
                ("Q", b"say \"hi\"\nthere", 7),
                ("LAST", b"z", 9),
            ]
        );
        // What export writes reads back, multi-line values included.
        let secrets = vec![Plain {
            namespace: "n".into(),
            name: "TLS_KEY".into(),
            value: SecretBytes::from(pem.as_bytes().to_vec()),
        }];
        let text = encode_dotenv(&secrets).unwrap();
        assert_eq!(
            parse_dotenv(&text).unwrap()[0].1.expose_secret(),
            pem.as_bytes()
        );
        // An opening quote that never closes names its line, not the value.
        let e = parse_dotenv(b"A=1\nKEY=\"-----BEGIN s3cr3t\nmore\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("KEY"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn json_round_trip_with_binary() {
        let secrets = vec![
            Plain {
                namespace: "a/b".into(),
                name: "text".into(),
                value: SecretBytes::from(b"v".to_vec()),
            },
            Plain {
                namespace: "a/b".into(),
                name: "bin".into(),
                value: SecretBytes::from(vec![0, 159, 146, 150]),
            },
        ];
        let doc = encode_json(&secrets).unwrap();
        let back = parse_json(&doc, "default").unwrap();
        assert_eq!(back[0].0, "a/b");
        assert_eq!(back[1].2.expose_secret(), &[0, 159, 146, 150]);
        assert!(parse_json(b"{\"format\":\"other\",\"version\":1,\"secrets\":[]}", "d").is_err());
        assert!(parse_json(b"not json", "d").is_err());
        let no_ns =
            br#"{"format":"strongroom-export","version":1,"secrets":[{"name":"n","value":"v"}]}"#;
        assert_eq!(parse_json(no_ns, "dflt").unwrap()[0].0, "dflt");
    }

    #[test]
    fn env_names() {
        for ok in ["A", "_", "DB_PASSWORD", "a1"] {
            assert!(is_env_name(ok));
        }
        for bad in ["", "1A", "A-B", "A B", "é"] {
            assert!(!is_env_name(bad));
        }
    }
}
