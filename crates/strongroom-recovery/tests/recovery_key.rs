//! Recovery key: text and word forms (exhaustive typo detection, round trips), the
//! keyholder, verification and replacement.

use proptest::prelude::*;
use secrecy::ExposeSecret;
use strongroom_crypto::Key256;
use strongroom_recovery::{
    Keyholder, KeyholderError, KeyholderKind, ParseRecoveryKeyError, RecoveryKey, RecoveryKeyId,
    StanzaInfo, WrapContext, unwrap_any, verify_recovery_key,
};

const ALPHABET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn ctx() -> WrapContext<'static> {
    WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"vault-1/member-1",
    }
}

fn compact(rk: &RecoveryKey) -> Vec<u8> {
    rk.to_text()
        .expose_secret()
        .bytes()
        .filter(|&b| b != b'-')
        .map(|b| b.to_ascii_lowercase())
        .collect()
}

/// Every single-character substitution, at every position (prefix included) and with every
/// character a person could type (letters and digits), is detected; past the prefix, the
/// error names exactly the group that holds the typo.
#[test]
fn every_substitution_is_detected_and_located() {
    for _ in 0..2 {
        let rk = RecoveryKey::generate().unwrap();
        let text = compact(&rk);
        assert_eq!(text.len(), 70);
        let mut checked = 0;
        for i in 0..text.len() {
            for c in b"abcdefghijklmnopqrstuvwxyz0123456789" {
                if *c == text[i] {
                    continue;
                }
                let mut t = text.clone();
                t[i] = *c;
                let s = String::from_utf8(t).unwrap();
                let err = RecoveryKey::parse(&s).expect_err("a substitution must be detected");
                checked += 1;
                let group = i / 5 + 1;
                match err {
                    ParseRecoveryKeyError::NotARecoveryKey => assert!(i < 4, "{i}"),
                    ParseRecoveryKeyError::InvalidCharacter { group: g } => {
                        assert!(!ALPHABET.as_bytes().contains(c), "{i} {c}");
                        assert_eq!(g, group);
                    }
                    ParseRecoveryKeyError::Checksum { groups } => {
                        assert!(i >= 4);
                        assert_eq!(groups, vec![group], "position {i}");
                    }
                    other => panic!("position {i}: unexpected {other:?}"),
                }
            }
        }
        assert_eq!(checked, 70 * 35);
    }
}

/// Every transposition of two different neighbours is detected and located.
#[test]
fn every_adjacent_transposition_is_detected_and_located() {
    for _ in 0..3 {
        let rk = RecoveryKey::generate().unwrap();
        let text = compact(&rk);
        for i in 0..text.len() - 1 {
            if text[i] == text[i + 1] {
                continue;
            }
            let mut t = text.clone();
            t.swap(i, i + 1);
            let s = String::from_utf8(t).unwrap();
            let err = RecoveryKey::parse(&s).expect_err("a transposition must be detected");
            match err {
                ParseRecoveryKeyError::NotARecoveryKey
                | ParseRecoveryKeyError::InvalidCharacter { .. } => {
                    assert!(i < 4, "{i}");
                }
                ParseRecoveryKeyError::Checksum { groups } => {
                    let mut expected = vec![i / 5 + 1, (i + 1) / 5 + 1];
                    expected.dedup();
                    assert_eq!(groups, expected, "position {i}");
                }
                other => panic!("position {i}: unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn missing_and_extra_characters_are_located() {
    let rk = RecoveryKey::generate().unwrap();
    let text = compact(&rk);
    for i in [4, 17, 33, 50, 69] {
        let mut short = text.clone();
        short.remove(i);
        match RecoveryKey::parse(std::str::from_utf8(&short).unwrap()).unwrap_err() {
            ParseRecoveryKeyError::WrongLength { got: 69, groups } => {
                assert!(!groups.is_empty(), "{i}");
                assert!(
                    groups.contains(&(i / 5 + 1)) || groups.contains(&(i / 5)),
                    "{i} {groups:?}"
                );
            }
            other => panic!("{i}: {other:?}"),
        }
        let mut long = text.clone();
        long.insert(i, b'q');
        let err = RecoveryKey::parse(std::str::from_utf8(&long).unwrap()).unwrap_err();
        assert!(
            matches!(err, ParseRecoveryKeyError::WrongLength { got: 71, ref groups } if !groups.is_empty()),
            "{i}: {err:?}"
        );
    }
    let err = RecoveryKey::parse(std::str::from_utf8(&text[..40]).unwrap()).unwrap_err();
    assert!(matches!(
        err,
        ParseRecoveryKeyError::WrongLength { got: 40, .. }
    ));
    assert!(err.to_string().contains("70 characters"), "{err}");
}

#[test]
fn case_spaces_and_dashes_are_ignored() {
    let rk = RecoveryKey::generate().unwrap();
    let text = rk.to_text();
    let t = text.expose_secret();
    let variants = [
        t.to_string(),
        t.to_lowercase(),
        t.replace('-', ""),
        t.replace('-', " "),
        t.replace('-', "\n"),
        format!("  {}\t", t.replace('-', " - ")),
        t.chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect(),
        t.replace('-', "")
            .chars()
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-"),
    ];
    for v in variants {
        let back = RecoveryKey::parse(&v).unwrap();
        assert_eq!(back.key_id(), rk.key_id(), "{v}");
        assert_eq!(back.to_text().expose_secret(), t);
    }
}

#[test]
fn wrong_prefix_and_foreign_input() {
    let rk = RecoveryKey::generate().unwrap();
    let t = rk.to_text().expose_secret().replacen("SRK1", "AGE1", 1);
    assert_eq!(
        RecoveryKey::parse(&t).unwrap_err(),
        ParseRecoveryKeyError::NotARecoveryKey
    );
    assert_eq!(
        RecoveryKey::parse("").unwrap_err(),
        ParseRecoveryKeyError::NotARecoveryKey
    );
    let words = rk.to_words();
    assert_eq!(
        RecoveryKey::parse(words.expose_secret()).unwrap_err(),
        ParseRecoveryKeyError::LooksLikeWords
    );
    let err = RecoveryKey::parse("SRK1Q-ÄBCDE").unwrap_err();
    assert_eq!(err, ParseRecoveryKeyError::InvalidCharacter { group: 2 });
    let mut b = compact(&rk);
    b[12] = b'b';
    let err = RecoveryKey::parse(std::str::from_utf8(&b).unwrap()).unwrap_err();
    assert_eq!(err, ParseRecoveryKeyError::InvalidCharacter { group: 3 });
    assert!(err.to_string().contains("no B, I, O or 1"), "{err}");
}

#[test]
fn two_typos_are_detected_without_location() {
    let rk = RecoveryKey::generate().unwrap();
    let mut t = compact(&rk);
    t[10] = if t[10] == b'q' { b'p' } else { b'q' };
    t[40] = if t[40] == b'q' { b'p' } else { b'q' };
    let err = RecoveryKey::parse(std::str::from_utf8(&t).unwrap()).unwrap_err();
    assert_eq!(err, ParseRecoveryKeyError::Checksum { groups: vec![] });
    assert!(err.to_string().contains("re-type"), "{err}");
}

#[test]
fn errors_never_echo_the_key() {
    let rk = RecoveryKey::generate().unwrap();
    let mut t = compact(&rk);
    t[30] = if t[30] == b'q' { b'p' } else { b'q' };
    let s = String::from_utf8(t).unwrap();
    let msg = RecoveryKey::parse(&s)
        .unwrap_err()
        .to_string()
        .to_lowercase();
    for g in s.as_bytes().chunks(5).skip(1) {
        assert!(!msg.contains(std::str::from_utf8(g).unwrap()), "{msg}");
    }
}

#[test]
fn words_form() {
    let rk = RecoveryKey::generate().unwrap();
    let words = rk.to_words();
    let w = words.expose_secret();
    assert_eq!(w.split(' ').count(), 24);
    let back = RecoveryKey::parse_words(w).unwrap();
    assert_eq!(back.key_id(), rk.key_id());
    let messy = format!("  {}\n", w.to_uppercase().replace(' ', "  \n "));
    assert_eq!(
        RecoveryKey::parse_words(&messy).unwrap().key_id(),
        rk.key_id()
    );
    assert_eq!(
        RecoveryKey::parse_any(&messy).unwrap().key_id(),
        rk.key_id()
    );
    assert_eq!(
        RecoveryKey::parse_any(rk.to_text().expose_secret())
            .unwrap()
            .key_id(),
        rk.key_id()
    );

    let list: Vec<&str> = w.split(' ').collect();
    assert_eq!(
        RecoveryKey::parse_words(&list[..23].join(" ")).unwrap_err(),
        ParseRecoveryKeyError::WrongWordCount { got: 23 }
    );
    let mut bad = list.clone();
    bad[6] = "strongroomx";
    assert_eq!(
        RecoveryKey::parse_words(&bad.join(" ")).unwrap_err(),
        ParseRecoveryKeyError::UnknownWord { position: 7 }
    );
    // A swap of two different words breaks the checksum in most cases; count them.
    let mut detected = 0;
    let mut tried = 0;
    for i in 0..23 {
        if list[i] == list[i + 1] {
            continue;
        }
        let mut s = list.clone();
        s.swap(i, i + 1);
        tried += 1;
        match RecoveryKey::parse_words(&s.join(" ")) {
            Err(ParseRecoveryKeyError::WordChecksum) => detected += 1,
            Ok(other) => assert_ne!(other.key_id(), rk.key_id()),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(detected * 2 > tried, "{detected}/{tried}");
    // A 12-word BIP 39 phrase is valid BIP 39 but not a recovery key.
    let twelve = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
    assert_eq!(
        RecoveryKey::parse_words(twelve).unwrap_err(),
        ParseRecoveryKeyError::WrongWordCount { got: 12 }
    );
}

#[test]
fn keyholder_round_trip_and_errors() {
    let rk = RecoveryKey::generate().unwrap();
    let key = Key256::generate().unwrap();
    let s = rk.wrap(&ctx(), &key).unwrap();
    assert_eq!(s.kind, KeyholderKind::RecoveryKey);
    assert_eq!(s.id, rk.stanza_id());
    assert_eq!(s.body.len(), 73);
    assert_eq!(RecoveryKeyId::of_stanza(&s), Some(rk.key_id()));
    assert_eq!(
        StanzaInfo::of(&s).unwrap(),
        StanzaInfo::RecoveryKey {
            key_id: rk.key_id()
        }
    );
    assert!(bool::from(
        rk.unwrap(&ctx(), &s).unwrap().unwrap().ct_eq(&key)
    ));
    assert!(rk.describe().contains(&rk.key_id().to_string()));

    // Another recovery key: not its stanza (no decryption attempted), and unwrap_any names
    // the key that was tried.
    let other = RecoveryKey::generate().unwrap();
    assert!(other.unwrap(&ctx(), &s).unwrap().is_none());
    match unwrap_any(&other, &ctx(), std::slice::from_ref(&s)).unwrap_err() {
        KeyholderError::WrongRecoveryKey { key_id } => {
            assert_eq!(key_id, other.key_id().to_string());
        }
        e => panic!("{e:?}"),
    }
    // Its own stanza, modified or in another context: authentication failure.
    let mut t = s.clone();
    t.body[40] ^= 1;
    assert!(matches!(
        rk.unwrap(&ctx(), &t),
        Err(KeyholderError::Crypto(_))
    ));
    let ctx2 = WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"vault-2/member-1",
    };
    assert!(matches!(
        rk.unwrap(&ctx2, &s),
        Err(KeyholderError::Crypto(_))
    ));
    // No recovery-key stanza at all
    assert!(matches!(
        unwrap_any(&rk, &ctx(), &[]),
        Err(KeyholderError::NoMatchingStanza {
            kind: KeyholderKind::RecoveryKey
        })
    ));
}

#[test]
fn verify_and_replace() {
    let key = Key256::generate().unwrap();
    let old = RecoveryKey::generate().unwrap();
    let mut stanzas = vec![old.wrap(&ctx(), &key).unwrap()];
    verify_recovery_key(&old, &ctx(), &stanzas[0]).unwrap();
    let before = stanzas.clone();

    // Replace: new stanza added and verified, then the old one removed.
    let new = RecoveryKey::generate().unwrap();
    stanzas.push(new.wrap(&ctx(), &key).unwrap());
    verify_recovery_key(&new, &ctx(), &stanzas[1]).unwrap();
    let old_id = old.key_id();
    stanzas.retain(|s| RecoveryKeyId::of_stanza(s) != Some(old_id));
    assert_eq!(stanzas.len(), 1);

    assert!(matches!(
        verify_recovery_key(&old, &ctx(), &stanzas[0]),
        Err(KeyholderError::WrongRecoveryKey { .. })
    ));
    assert!(matches!(
        unwrap_any(&old, &ctx(), &stanzas),
        Err(KeyholderError::WrongRecoveryKey { .. })
    ));
    assert!(bool::from(
        unwrap_any(&new, &ctx(), &stanzas).unwrap().0.ct_eq(&key)
    ));
    // the old key still opens the old stanza: verification itself changed nothing
    verify_recovery_key(&old, &ctx(), &before[0]).unwrap();

    let mut not_rk = stanzas[0].clone();
    not_rk.kind = KeyholderKind::RawKek;
    assert!(matches!(
        verify_recovery_key(&new, &ctx(), &not_rk),
        Err(KeyholderError::NoMatchingStanza { .. })
    ));
}

#[test]
fn secrets_are_redacted() {
    let rk = RecoveryKey::generate().unwrap();
    let text = rk.to_text();
    let words = rk.to_words();
    let dbg = format!("{rk:?} {text:?} {words:?}");
    assert!(!dbg.contains(&text.expose_secret()[6..20]), "{dbg}");
    let first_words: Vec<&str> = words.expose_secret().split(' ').take(3).collect();
    assert!(!dbg.contains(&first_words.join(" ")), "{dbg}");
    assert!(dbg.contains(&rk.key_id().to_string()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn text_and_words_round_trip(seed in any::<[u8; 32]>()) {
        // A key from arbitrary bytes goes through the word form, which is a plain encoding.
        let words = bip39::Mnemonic::from_entropy(&seed).unwrap().to_string();
        let rk = RecoveryKey::parse_words(&words).unwrap();
        prop_assert_eq!(rk.to_words().expose_secret().to_string(), words.clone());
        let text = rk.to_text();
        let back = RecoveryKey::parse(text.expose_secret()).unwrap();
        prop_assert_eq!(back.key_id(), rk.key_id());
        prop_assert_eq!(back.to_words().expose_secret().to_string(), words);
        let id = rk.key_id();
        prop_assert_eq!(id.to_string().parse::<RecoveryKeyId>().unwrap(), id);
    }

    #[test]
    fn parsing_never_panics(s in "\\PC{0,100}") {
        let _ = RecoveryKey::parse(&s);
        let _ = RecoveryKey::parse_words(&s);
        let _ = RecoveryKey::parse_any(&s);
        let _ = s.parse::<RecoveryKeyId>();
    }

    #[test]
    fn parsing_near_misses_never_panics(noise in proptest::collection::vec((0usize..80, "[a-z0-9 \\-]"), 0..4)) {
        let rk = RecoveryKey::parse("SRK1Q-YJFRJ-2Q59R-QVSK7-UNXFU-W2QFY-5ERTU-7AYVS-VGSZP-LA70F-TX80N-DJCE4-M4QSY-8LD5V").unwrap();
        let mut t = rk.to_text().expose_secret().to_string();
        for (pos, ch) in noise {
            let p = pos.min(t.len());
            t.insert_str(p, &ch);
        }
        let _ = RecoveryKey::parse(&t);
    }
}

#[test]
fn a_recovery_key_id_shows_as_its_printed_form() {
    let id: RecoveryKeyId = "abcd 12-34".parse().unwrap();
    assert_eq!(id.to_string(), "ABCD-1234");
    assert_eq!(format!("{id:?}"), "RecoveryKeyId(ABCD-1234)");
}

#[test]
fn a_valid_bech32m_text_of_the_wrong_length_is_refused() {
    // Checksummed text with the recovery key's prefix but 38 bytes instead of 37.
    let mut payload = [7u8; 38];
    payload[0] = 1;
    let text =
        bech32::encode::<bech32::Bech32m>(bech32::Hrp::parse("srk").unwrap(), &payload).unwrap();
    match RecoveryKey::parse(&text) {
        Err(ParseRecoveryKeyError::WrongLength { got, .. }) => assert_eq!(got, text.len()),
        other => panic!("{:?}", other.map(|k| k.key_id())),
    }
}

#[test]
fn only_words_of_three_letters_or_more_look_like_the_word_form() {
    for (text, want) in [
        (
            "ab cd ef gh ij kl mn op qr st uv wx",
            ParseRecoveryKeyError::NotARecoveryKey,
        ),
        (
            "abc1 def2 ghi3 jkl4 mno5 pqr6 stu7 vwx8 yza9 bcd1 efg2 hij3",
            ParseRecoveryKeyError::NotARecoveryKey,
        ),
        (
            "abandon ability able about above absent absorb abstract absurd abuse access accident",
            ParseRecoveryKeyError::LooksLikeWords,
        ),
        (
            "act add age aim air all and ant any ape arm art",
            ParseRecoveryKeyError::LooksLikeWords,
        ),
    ] {
        assert_eq!(RecoveryKey::parse(text).err(), Some(want), "{text}");
    }
}
