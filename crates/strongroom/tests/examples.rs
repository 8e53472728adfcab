//! Runs the body of every example in `examples/` (the `[[example]]` targets of this crate),
//! so an example that stops compiling or starts failing fails the test suite.
//!
//! Each example keeps its work in `run()`; `main` only calls it. Each runs twice, as a
//! user copying it would run it again: nothing of the first run may stand in the way.

#[allow(dead_code)] // each example's `main` is its binary's entry point only
#[path = "../../../examples/embed_in_server.rs"]
mod embed_in_server;

#[allow(dead_code)]
#[path = "../../../examples/http_server.rs"]
mod http_server;

#[allow(dead_code)]
#[path = "../../../examples/rotate_vault_key.rs"]
mod rotate_vault_key;

#[allow(dead_code)]
#[path = "../../../examples/share_with_teammate.rs"]
mod share_with_teammate;

#[allow(dead_code)]
#[path = "../../../examples/recover_lost_passphrase.rs"]
mod recover_lost_passphrase;

#[allow(dead_code)]
#[path = "../../../examples/service_account.rs"]
mod service_account;

#[test]
fn example_service_account() {
    for _ in 0..2 {
        service_account::run().unwrap();
    }
}

#[test]
fn example_embed_in_server() {
    for _ in 0..2 {
        embed_in_server::run().unwrap();
    }
}

#[test]
fn example_rotate_vault_key() {
    for _ in 0..2 {
        rotate_vault_key::run().unwrap();
    }
}

#[test]
fn example_share_with_teammate() {
    for _ in 0..2 {
        share_with_teammate::run().unwrap();
    }
}

#[test]
fn example_recover_lost_passphrase() {
    for _ in 0..2 {
        recover_lost_passphrase::run().unwrap();
    }
}

#[test]
fn example_http_server() {
    for _ in 0..2 {
        http_server::run().unwrap();
    }
}
