//! The PKCS#11 keyholder against a TPM 2.0: a software TPM (`swtpm`) behind the TPM2 access
//! broker and resource manager (`tpm2-abrmd --session`) on a private D-Bus session bus, with
//! a tpm2-pkcs11 token (`tpm2_ptool init` + `addtoken`) in a temporary store. A vault member
//! is unlocked by an RSA key that lives in the TPM (the token offers no AES-GCM).
//!
//! The parent starts `dbus-daemon`, `swtpm` and `tpm2-abrmd`, makes the token, then re-runs
//! the test in a child process whose `DBUS_SESSION_BUS_ADDRESS`, `TPM2_PKCS11_STORE` and
//! `TPM2_PKCS11_TCTI` point at them; nothing outside the temporary folder is touched.
//! Without the tools (Debian packages swtpm, tpm2-tools, tpm2-abrmd, libtss2-tcti-tabrmd0,
//! libtpm2-pkcs11-1, libtpm2-pkcs11-tools, dbus-daemon) the test prints `SKIPPED:` and
//! passes, unless `STRONGROOM_REQUIRE_TPM=1`, which makes that a failure.
#![cfg(target_os = "linux")]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use strongroom::recovery::{PassphraseKeyholder, Profile};
use strongroom::store::{MemoryStore, Store};
use strongroom::{CreateOptions, Vault, VaultError};
use strongroom_crypto::{CryptoError, Key256};
use strongroom_keyholder::{
    CustodyProblem, Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext, unwrap_any,
};
use strongroom_pkcs11::{
    Pkcs11Config, Pkcs11Keyholder, Pkcs11Mechanism, find_tpm2_pkcs11, secrecy::SecretString,
};

const CHILD: &str = "STRONGROOM_TPM_TEST_CHILD";
const TOKEN: &str = "strongroom-tpm";
/// Test PINs of the throwaway token (not secrets).
const PIN: &str = "24681357";
const SO_PIN: &str = "13572468";
const TCTI: &str = "tabrmd:bus_type=session";

fn ctx() -> WrapContext<'static> {
    WrapContext {
        purpose: "strongroom/v1/vault-key",
        subject: b"vault-1",
    }
}

fn config(key: &str) -> Pkcs11Config {
    Pkcs11Config::new(TOKEN, key, SecretString::from(PIN))
        .with_module(find_tpm2_pkcs11().expect("tpm2-pkcs11 module"))
}

fn runs(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// dbus-daemon, swtpm and tpm2-abrmd, killed on drop.
struct Tpm {
    children: Vec<Child>,
    bus: String,
    store: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Tpm {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tool(tpm: &Tpm, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", &tpm.bus)
        .env("TPM2TOOLS_TCTI", TCTI)
        .env("TPM2_PKCS11_TCTI", TCTI)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start(name: &str) -> Tpm {
    let dir = tempfile::tempdir().unwrap();
    let (state, store, run) = (
        dir.path().join("state"),
        dir.path().join("store"),
        dir.path().join("run"),
    );
    for d in [&state, &store, &run] {
        std::fs::create_dir(d).unwrap();
    }
    let conf = dir.path().join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>
"#,
            run.join("bus").display()
        ),
    )
    .unwrap();
    let mut bus = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", conf.display()))
        .args(["--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut address = String::new();
    BufReader::new(bus.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let mut tpm = Tpm {
        children: vec![bus],
        bus: address.trim().to_owned(),
        store,
        dir,
    };
    // The swtpm TCTI finds the control channel at the server port + 1.
    let (server, ctrl) = loop {
        let p = free_port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            break (p, p + 1);
        }
    };
    tpm.children.push(
        Command::new("swtpm")
            .args(["socket", "--tpm2"])
            .arg(format!("--tpmstate=dir={}", state.display()))
            .arg(format!(
                "--server=type=tcp,port={server},bindaddr=127.0.0.1"
            ))
            .arg(format!("--ctrl=type=tcp,port={ctrl},bindaddr=127.0.0.1"))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", server)).is_err() {
        assert!(Instant::now() < deadline, "{name}: swtpm did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    tpm.children.push(
        Command::new("tpm2-abrmd")
            .args(["--session", "--allow-root"])
            .arg(format!("--tcti=swtpm:host=127.0.0.1,port={server}"))
            .env("DBUS_SESSION_BUS_ADDRESS", &tpm.bus)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tpm.dir.path().join("abrmd.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("tpm2_getrandom")
            .args(["--hex", "8"])
            .env("DBUS_SESSION_BUS_ADDRESS", &tpm.bus)
            .env("TPM2TOOLS_TCTI", TCTI)
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: tpm2-abrmd did not come up: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(tpm.dir.path().join("abrmd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let store = tpm.store.display().to_string();
    tool(&tpm, "tpm2_ptool", &["init", "--path", &store]);
    tool(
        &tpm,
        "tpm2_ptool",
        &[
            "addtoken",
            "--pid=1",
            &format!("--label={TOKEN}"),
            &format!("--sopin={SO_PIN}"),
            &format!("--userpin={PIN}"),
            "--path",
            &store,
        ],
    );
    tpm
}

fn with_tpm(name: &str, body: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        body();
        return;
    }
    let tabrmd = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .any(|d| Path::new(d).join("libtss2-tcti-tabrmd.so.0").exists());
    let have = runs("swtpm", "--version")
        && runs("tpm2-abrmd", "--version")
        && runs("tpm2_ptool", "--help")
        && runs("tpm2_getrandom", "--version")
        && runs("dbus-daemon", "--version")
        && tabrmd
        && find_tpm2_pkcs11().is_some();
    if !have {
        assert!(
            std::env::var("STRONGROOM_REQUIRE_TPM").as_deref() != Ok("1"),
            "{name}: the software TPM tools are missing but STRONGROOM_REQUIRE_TPM=1: install the Debian packages swtpm swtpm-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 libtpm2-pkcs11-1 libtpm2-pkcs11-tools dbus-daemon"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {name}: swtpm, tpm2-abrmd, tpm2_ptool or tpm2-pkcs11 not found (install the Debian packages swtpm swtpm-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 libtpm2-pkcs11-1 libtpm2-pkcs11-tools dbus-daemon; STRONGROOM_REQUIRE_TPM=1 makes this a failure)"
        );
        return;
    }
    let tpm = start(name);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .env("DBUS_SESSION_BUS_ADDRESS", &tpm.bus)
        .env("TPM2_PKCS11_STORE", &tpm.store)
        .env("TPM2_PKCS11_TCTI", TCTI)
        .env("TPM2_PKCS11_LOG_LEVEL", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed against the software TPM:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("test {name} ... "))
            && stdout.contains("test result: ok. 1 passed"),
        "{name} did not run in the child:\n{stdout}\n{stderr}"
    );
    for line in stdout
        .lines()
        .filter_map(|l| l.find("LATENCY").map(|i| &l[i..]))
    {
        println!("{line}");
    }
}

/// A vault member unlocked by a TPM-resident RSA key: the token has no AES-GCM (an AES key
/// is refused with a message naming RSA-OAEP), the RSA key pair is made in the TPM and its
/// private half is sensitive and non-extractable; add, unlock from storage with a fresh
/// keyholder, tampering, rotate to a second TPM key (one stanza), a missing key, a wrong
/// PIN, remove; and the unlock latency next to the raw TPM decrypt.
#[test]
fn tpm_resident_key_unlocks_a_vault() {
    with_tpm("tpm_resident_key_unlocks_a_vault", || {
        // What the token offers: no AES-GCM; an AES key is refused with a message naming
        // RSA-OAEP.
        // (tpm2-pkcs11 makes no AES key at all: C_GenerateKey is not supported.)
        let err = Pkcs11Keyholder::create_key(config("aes")).unwrap_err();
        assert!(matches!(err, KeyholderError::Custody(_)), "{err:?}");
        assert!(err.to_string().contains("RSA-OAEP"), "{err}");

        let rsa = || config("vault-kek").with_mechanism(Pkcs11Mechanism::RsaOaep);
        let tpm = Pkcs11Keyholder::create_key(rsa()).unwrap();
        assert_eq!(tpm.mechanism(), Pkcs11Mechanism::RsaOaep);
        private_key_stays_in_the_tpm("vault-kek");

        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let pass = PassphraseKeyholder::new(
            &SecretString::from("a test passphrase next to the tpm"),
            Profile::Constrained,
        )
        .unwrap();
        let (vault, _) =
            Vault::create(Arc::clone(&store), &pass, &CreateOptions::default()).unwrap();
        vault.put("core/app", "DB_PASSWORD", b"hunter2").unwrap();
        let info = vault.add_keyholder(&tpm).unwrap();
        assert_eq!(info.kind, KeyholderKind::Pkcs11);
        drop(vault);

        // A later process: only the token, key label and PIN.
        let fresh = Pkcs11Keyholder::open(config("vault-kek")).unwrap();
        assert_eq!(fresh.mechanism(), Pkcs11Mechanism::RsaOaep);
        let vault = Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&fresh)
            .unwrap();
        assert_eq!(
            vault
                .get("core/app", "DB_PASSWORD")
                .unwrap()
                .expose_secret(),
            b"hunter2"
        );

        // The stanza: version 2, RSA-OAEP; tampering or another context does not open.
        let key = Key256::generate().unwrap();
        let s = Stanza::decode(&fresh.wrap(&ctx(), &key).unwrap().encode()).unwrap();
        assert_eq!(
            Pkcs11Keyholder::mechanism_of(&s).unwrap(),
            Some(Pkcs11Mechanism::RsaOaep)
        );
        assert!(bool::from(
            unwrap_any(&fresh, &ctx(), std::slice::from_ref(&s))
                .unwrap()
                .0
                .ct_eq(&key)
        ));
        let mut t = s.clone();
        let last = t.body.len() - 1;
        t.body[last] ^= 1;
        assert!(fresh.unwrap(&ctx(), &t).is_err());
        let other = WrapContext {
            purpose: "strongroom/v1/vault-key",
            subject: b"vault-2",
        };
        assert!(matches!(
            fresh.unwrap(&other, &s),
            Err(KeyholderError::Crypto(CryptoError::Decrypt))
        ));

        latency(&fresh, &s);

        // A wrong PIN: refused, named, not a custody failure.
        let bad = Pkcs11Config::new(TOKEN, "vault-kek", SecretString::from("00000000"))
            .with_module(find_tpm2_pkcs11().unwrap());
        assert!(matches!(
            Pkcs11Keyholder::open(bad),
            Err(KeyholderError::WrongPin { .. })
        ));

        // Rotate to a second TPM key: one stanza rewritten; shred the old key.
        let next = Pkcs11Keyholder::create_key(
            config("vault-kek-2").with_mechanism(Pkcs11Mechanism::RsaOaep),
        )
        .unwrap();
        let rotated = vault.rotate_keyholder(&info.id, &next).unwrap();
        // The old key no longer opens the member: its stanza is gone.
        assert!(matches!(
            Vault::open(Arc::clone(&store)).unwrap().unlock(&fresh),
            Err(VaultError::Unlock(_))
        ));
        // (tpm2-pkcs11 1.9 refuses C_DestroyObject on the key pair with CKR_FUNCTION_FAILED,
        // so the old key is left in the token store here; see the crate README.)
        drop(vault);
        let vault = Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&Pkcs11Keyholder::open(config("vault-kek-2")).unwrap())
            .unwrap();
        assert_eq!(
            vault
                .get("core/app", "DB_PASSWORD")
                .unwrap()
                .expose_secret(),
            b"hunter2"
        );
        // A key label that is not in the TPM's token: a custody error, not a wrong key.
        match Pkcs11Keyholder::open(config("no-such-key")) {
            Err(KeyholderError::Custody(c)) => assert_eq!(c.problem, CustodyProblem::Missing),
            other => panic!("{other:?}"),
        }

        // Remove: the TPM key no longer unlocks the member.
        vault.remove_keyholder(&rotated.id).unwrap();
        drop(vault);
        let err = Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&next)
            .unwrap_err();
        assert!(matches!(err, VaultError::Unlock(_)), "{err:?}");
        Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&pass)
            .unwrap();
    });
}

/// The private key is in the TPM's token: sensitive, non-extractable, its value unreadable.
fn private_key_stays_in_the_tpm(label: &str) {
    let p11 = Pkcs11::new(find_tpm2_pkcs11().unwrap()).unwrap();
    let _ = p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = p11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| p11.get_token_info(*s).unwrap().label() == TOKEN)
        .unwrap();
    let session = p11.open_ro_session(slot).unwrap();
    session
        .login(UserType::User, Some(&SecretString::from(PIN)))
        .unwrap();
    let private = session
        .find_objects(&[
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Class(ObjectClass::PRIVATE_KEY),
        ])
        .unwrap();
    assert_eq!(private.len(), 1);
    let attrs = session
        .get_attributes(
            private[0],
            &[AttributeType::Sensitive, AttributeType::Extractable],
        )
        .unwrap();
    assert!(attrs.contains(&Attribute::Sensitive(true)), "{attrs:?}");
    assert!(attrs.contains(&Attribute::Extractable(false)), "{attrs:?}");
    assert!(
        session
            .get_attributes(private[0], &[AttributeType::PrivateExponent])
            .map_or(true, |a| a.is_empty())
    );
    session.logout().unwrap();
}

/// Prints the unlock latency (one keyholder unwrap: session, login, RSA-OAEP decrypt in the
/// TPM, logout) next to the raw calls it wraps: the same session + login + C_Decrypt with
/// cryptoki alone, and the bare C_Decrypt in a session already logged in.
fn latency(kh: &Pkcs11Keyholder, s: &Stanza) {
    const N: u32 = 20;
    let t = Instant::now();
    for _ in 0..N {
        kh.unwrap(&ctx(), s).unwrap().unwrap();
    }
    let keyholder = t.elapsed() / N;

    let body = &s.body;
    let ct = &body[body.len() - 256..];
    let p11 = Pkcs11::new(find_tpm2_pkcs11().unwrap()).unwrap();
    let _ = p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = p11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| p11.get_token_info(*s).unwrap().label() == TOKEN)
        .unwrap();
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ));
    let decrypt = |session: &cryptoki::session::Session| {
        let key = session
            .find_objects(&[
                Attribute::Label(b"vault-kek".to_vec()),
                Attribute::Class(ObjectClass::PRIVATE_KEY),
            ])
            .unwrap()[0];
        assert_eq!(session.decrypt(&oaep, key, ct).unwrap().len(), 64);
    };
    let t = Instant::now();
    for _ in 0..N {
        let session = p11.open_rw_session(slot).unwrap();
        session
            .login(UserType::User, Some(&SecretString::from(PIN)))
            .unwrap();
        decrypt(&session);
        session.logout().unwrap();
    }
    let raw_login = t.elapsed() / N;
    let session = p11.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&SecretString::from(PIN)))
        .unwrap();
    let t = Instant::now();
    for _ in 0..N {
        decrypt(&session);
    }
    let raw = t.elapsed() / N;
    session.logout().unwrap();
    println!(
        "LATENCY tpm (swtpm + tpm2-abrmd + tpm2-pkcs11, RSA-2048 OAEP, mean of {N}): keyholder unwrap {keyholder:?}; raw session + login + C_Decrypt {raw_login:?}; raw C_Decrypt in a logged-in session {raw:?}"
    );
}
