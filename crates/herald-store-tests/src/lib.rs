//! One behavioural test suite for every implementation of `herald_store::Store`.
//!
//! Each scenario is a plain async function that takes a fresh, empty store, drives it
//! through the `Store` trait only, and checks the stored state with asserts. The
//! [`store_scenarios!`] macro turns a list of scenarios into one `#[tokio::test]` per
//! scenario and backend, so `sqlite::runs_upsert_by_line` and `postgres::runs_upsert_by_line`
//! run the same code. Scenarios that must open the same database a second time, as a
//! restarted process or a second process would, also take a [`Reopen`].
//!
//! [`sqlite`] and [`postgres`] create the fresh databases. PostgreSQL is required: its
//! tests fail, with instructions, when the server at `HERALD_TEST_DATABASE_URL` is not
//! reachable. Other crates' tests use [`postgres::TestDatabase`] for the same purpose.

pub mod fixtures;
pub mod postgres;
pub mod scenarios;
pub mod sqlite;

use std::sync::Arc;

use futures::future::BoxFuture;
use herald_store::Store;

/// Opens another handle on the same database, as a restarted Herald or a second Herald
/// process sharing the database would.
pub type Reopen = Arc<dyn Fn() -> BoxFuture<'static, Arc<dyn Store>> + Send + Sync>;

/// Defines a `sqlite` and a `postgres` test module, each with one test per scenario.
///
/// `store:` lists scenarios that take an `Arc<dyn Store>`, and `reopen:` lists scenarios that
/// also take a [`Reopen`]. Paths are relative to [`scenarios`]. The calling crate needs
/// `tokio` as a dependency.
#[macro_export]
macro_rules! store_scenarios {
    (
        store: [$($module:ident :: $name:ident),* $(,)?],
        reopen: [$($reopen_module:ident :: $reopen_name:ident),* $(,)?] $(,)?
    ) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::sqlite::run($crate::scenarios::$module::$name).await;
                }
            )*
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $reopen_name() {
                    $crate::sqlite::run_with_reopen($crate::scenarios::$reopen_module::$reopen_name).await;
                }
            )*
        }

        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::postgres::run($crate::scenarios::$module::$name).await;
                }
            )*
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $reopen_name() {
                    $crate::postgres::run_with_reopen($crate::scenarios::$reopen_module::$reopen_name).await;
                }
            )*
        }
    };
}
