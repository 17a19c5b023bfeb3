//! `steadfast demo`: the demo of `steadfast_examples::demo` on the
//! database `--dir` or `--db` names, with this binary's `worker` command
//! as the worker that is killed and restarted.

use std::path::PathBuf;

use anyhow::{Context, bail};
use steadfast_examples::demo::{self, DemoOptions};

use crate::DemoArgs;
use crate::db::{self, Open};

/// Runs `steadfast demo`.
///
/// `db` is the `--db` given on the command line (or in `STEADFAST_DB`), if
/// any: the demo's database, instead of `steadfast.db` in `--dir`. The
/// services' folder and the worker's log go next to the database.
pub async fn run(db: Option<&str>, args: DemoArgs) -> anyhow::Result<()> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        bail!(
            "--speed must be a number greater than zero, not {}",
            args.speed
        );
    }
    let db_path: PathBuf = match db.map(db::location).transpose()? {
        None => args.dir.join("steadfast.db"),
        Some(db::Location::Sqlite(path)) => path,
        Some(db::Location::Postgres(url)) => bail!(
            "the demo runs on an SQLite file; --db {url} is a PostgreSQL database \
             (run `steadfast worker` against it instead)"
        ),
    };
    if let Some(folder) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create the folder {}", folder.display()))?;
    }
    let store = db::open_path(&db_path, Open::Create).await?;
    demo::run(DemoOptions {
        store,
        services: db::services_dir(&db_path),
        db_path,
        speed: args.speed,
        worker: std::env::current_exe().context("cannot find this program's own path")?,
    })
    .await
}
