//! A fresh PostgreSQL schema per test, dropped afterwards, or a printed SKIP where PostgreSQL
//! cannot be reached.

use sqlx::postgres::PgPoolOptions;
use std::future::Future;

/// The test database: `SCIMGATE_TEST_PG`, else the local server with trust auth.
pub fn pg_url() -> String {
    std::env::var("SCIMGATE_TEST_PG")
        .unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".to_string())
}

/// Runs `test` with a store URL whose `search_path` is a fresh schema named after `prefix`,
/// then drops the schema (also when the test panics, whose panic is then resumed). When
/// PostgreSQL is unreachable, prints `SKIP postgres: …` and returns without running it.
pub async fn with_schema<F, Fut>(prefix: &str, test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = pg_url();
    let pg = match PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(&url)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            println!("SKIP postgres: {e}");
            return;
        }
    };
    let schema = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pg)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store_url = format!("{url}{sep}options[search_path]={schema}");
    let outcome = tokio::spawn(test(store_url)).await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pg)
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
