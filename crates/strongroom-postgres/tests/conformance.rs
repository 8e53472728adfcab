//! The PostgreSQL store passes the conformance suite (one shared throwaway server, a
//! fresh schema per test).

use strongroom_postgres::PostgresStore;
use strongroom_postgres::test_server::TestServer;

fn fresh() -> Option<PostgresStore> {
    Some(TestServer::shared()?.fresh_store())
}

strongroom_store::conformance_tests!(optional: fresh());
