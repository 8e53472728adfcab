//! An HTTP server (axum on tokio) that keeps its credentials in strongroom: it reads its
//! database password once at start-up and checks each request's bearer token against the
//! vault, through the async handle so no request waits on a store call on a runtime worker thread.
//!
//! ```text
//! cargo run -p strongroom --example http_server
//! ```
//!
//! The example serves on 127.0.0.1 (a free port), sends itself a few requests, prints
//! what they got and stops. Everything lives in a temporary directory.

use std::error::Error;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use strongroom::recovery::RawKek;
use strongroom::sqlite::{SqliteOptions, SqliteStore};
use strongroom::store::Store;
use strongroom::{AsyncVault, CreateOptions, MemoryPinStore, Vault};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() -> Result<(), Box<dyn Error>> {
    run()
}

/// The example's body (also run by the strongroom crate's tests).
pub(crate) fn run() -> Result<(), Box<dyn Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve())
}

#[derive(Clone)]
struct App {
    vault: AsyncVault,
}

/// `GET /orders`: allowed with the API token the vault holds (read per request, so a
/// rotated token takes effect at once).
async fn orders(State(app): State<App>, headers: HeaderMap) -> (StatusCode, &'static str) {
    let Some(given) = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_owned)
    else {
        return (StatusCode::UNAUTHORIZED, "no token\n");
    };
    match app.vault.get("core/shop", "API_TOKEN").await {
        Ok(token) => {
            use subtle::ConstantTimeEq;
            if bool::from(token.expose_secret().ct_eq(given.as_bytes())) {
                (StatusCode::OK, "3 orders\n")
            } else {
                (StatusCode::FORBIDDEN, "wrong token\n")
            }
        }
        // The vault is unavailable: fail closed, say nothing about why to the client.
        Err(e) => {
            eprintln!("vault: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "try again\n")
        }
    }
}

async fn serve() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        dir.path().join("vault.db"),
        SqliteOptions::default(),
    )?);
    let kek = RawKek::generate()?; // the deployment's ENCRYPTION_KEY, in production
    let (vault, _) = Vault::create(store, &kek, &CreateOptions::default())?;
    let vault = AsyncVault::new(vault.pin_to(Arc::new(MemoryPinStore::new()))?)?;
    vault
        .put("core/shop", "DATABASE_PASSWORD", b"hunter2".to_vec()) // pragma: allowlist secret
        .await?;
    vault
        .put("core/shop", "API_TOKEN", b"tok_live_1".to_vec())
        .await?;

    // Start-up: the database password, read once (a pool would be built with it here).
    let db_password = vault.get("core/shop", "DATABASE_PASSWORD").await?;
    println!(
        "start-up: database password read ({} bytes)",
        db_password.expose_secret().len()
    );
    drop(db_password);

    let app = Router::new().route("/orders", get(orders)).with_state(App {
        vault: vault.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving on http://{addr}");

    let ok = request(addr, Some("tok_live_1")).await?;
    let wrong = request(addr, Some("tok_stolen")).await?;
    let none = request(addr, None).await?;
    // The token is rotated in the vault: the old one stops working at the next request.
    vault
        .put("core/shop", "API_TOKEN", b"tok_live_2".to_vec())
        .await?;
    let old = request(addr, Some("tok_live_1")).await?;
    let new = request(addr, Some("tok_live_2")).await?;
    for (what, status) in [
        ("the current token", &ok),
        ("a wrong token", &wrong),
        ("no token", &none),
        ("the token before its rotation", &old),
        ("the rotated token", &new),
    ] {
        println!("GET /orders with {what}: {status}");
    }
    server.abort();
    if [
        ok.as_str(),
        wrong.as_str(),
        none.as_str(),
        old.as_str(),
        new.as_str(),
    ] != ["200", "403", "401", "403", "200"]
    {
        return Err("the server answered otherwise than expected".into());
    }
    Ok(())
}

/// A minimal HTTP/1.1 request: the status code of the answer.
async fn request(
    addr: std::net::SocketAddr,
    token: Option<&str>,
) -> Result<String, Box<dyn Error>> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    s.write_all(
        format!("GET /orders HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).await?;
    Ok(answer
        .split_whitespace()
        .nth(1)
        .unwrap_or("no answer")
        .to_owned())
}
