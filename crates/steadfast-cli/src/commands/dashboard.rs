//! `steadfast dashboard`: serves the web dashboard for the store.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use steadfast_dashboard::DashboardOptions;

use crate::db::{self, Open};

/// The environment variable holding the access token.
const TOKEN_ENV: &str = "STEADFAST_DASHBOARD_TOKEN";

/// Arguments of `steadfast dashboard`.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// The address to listen on: ADDRESS:PORT or localhost:PORT. Anything
    /// but loopback needs an access token of at least 32 characters.
    #[arg(long, default_value = "127.0.0.1:7777", value_name = "ADDR")]
    pub bind: String,
    /// The access token every request must carry (log in with the form at
    /// /login, or send `Authorization: Bearer …`). On the command line it
    /// is visible to every user of the machine in `ps`: prefer
    /// --token-file or the environment variable.
    #[arg(long, env = TOKEN_ENV, hide_env_values = true)]
    pub token: Option<String>,
    /// Read the access token from this file (surrounding whitespace is
    /// ignored). Takes precedence over the environment variable.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Also answer to this host name (repeatable), e.g. the name a reverse
    /// proxy forwards. Without a token the dashboard answers only to
    /// localhost, 127.0.0.1, `[::1]` and the bound address (a defence against
    /// DNS rebinding); with a token, giving names turns the same check on.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_host: Vec<String>,
    /// Mark the session cookie `Secure`: set it when the dashboard is
    /// served over HTTPS (e.g. behind a TLS-terminating proxy).
    #[arg(long)]
    pub secure_cookie: bool,
    /// How often open pages refresh themselves, in milliseconds (100 to
    /// 3,600,000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub poll_ms: u64,
}

impl DashboardArgs {
    /// The dashboard's options, with the token read from its file; refuses
    /// what the dashboard would refuse at start-up.
    pub fn options(&self) -> anyhow::Result<DashboardOptions> {
        let token = match &self.token_file {
            Some(_) if self.token_on_command_line() => {
                bail!("give the access token with --token or with --token-file, not both")
            }
            Some(path) => Some(read_token(path)?),
            None => self.token.clone(),
        };
        let mut options = DashboardOptions::default()
            .bind_to(&self.bind)?
            .token(token)
            .secure_cookie(self.secure_cookie)
            .poll_interval(std::time::Duration::from_millis(self.poll_ms));
        for name in &self.allow_host {
            options = options.allow_host(name.clone());
        }
        options.check()?;
        Ok(options)
    }

    /// Whether `--token` was given on the command line (rather than taken
    /// from the environment variable).
    fn token_on_command_line(&self) -> bool {
        self.token.is_some()
            && std::env::var_os(TOKEN_ENV).and_then(|v| v.into_string().ok()) != self.token
    }
}

/// The token in `path`, trimmed; refuses an empty or unreadable file and
/// warns when other users may read it.
pub(crate) fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                eprintln!(
                    "warning: other users may read the token file {} (mode {mode:o}); \
                     `chmod 600` it",
                    path.display()
                );
            }
        }
    }
    Ok(token.to_owned())
}

/// Runs the dashboard until Ctrl-C.
pub async fn run(db: &str, args: DashboardArgs) -> anyhow::Result<()> {
    let options = args.options()?;
    if args.token_on_command_line() {
        eprintln!(
            "warning: a token given with --token is visible to every user of this machine \
             (ps, /proc); prefer --token-file PATH or {TOKEN_ENV}"
        );
    }
    let (store, _) = db::open(db, Open::OnDemand).await?;
    let login = if options.token.is_some() {
        " (log in with the access token)"
    } else {
        ""
    };
    eprintln!(
        "Steadfast dashboard on {}/{login} (Ctrl-C to stop)",
        options.url()
    );
    tokio::select! {
        result = steadfast_dashboard::serve(store, options) => result.context("the dashboard stopped"),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DashboardArgs,
    }

    fn parse(argv: &[&str]) -> Result<DashboardArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("dashboard").chain(argv.iter().copied()))
            .map(|c| c.args)
    }

    fn options(argv: &[&str]) -> anyhow::Result<DashboardOptions> {
        parse(argv)?.options()
    }

    const LONG: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn bind_accepts_localhost_and_addresses() {
        let o = options(&["--bind", "localhost:7788"]).unwrap();
        assert_eq!(o.bind, "127.0.0.1:7788".parse().unwrap());
        assert_eq!(o.url(), "http://localhost:7788");
        let o = options(&["--bind", "[::1]:7788"]).unwrap();
        assert_eq!(o.bind, "[::1]:7788".parse().unwrap());
        let err = options(&["--bind", "localhost"]).unwrap_err().to_string();
        assert!(err.contains("ADDRESS:PORT"), "{err}");
        let err = options(&["--bind", "localhost:http"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a port number"), "{err}");
    }

    #[test]
    fn off_loopback_the_token_must_be_long() {
        let err = options(&["--bind", "0.0.0.0:7777"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("without an access token"), "{err}");
        let err = options(&["--bind", "0.0.0.0:7777", "--token", "short"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 32"), "{err}");
        assert!(options(&["--bind", "0.0.0.0:7777", "--token", LONG]).is_ok());
        // On loopback any token will do.
        assert!(options(&["--token", "short"]).is_ok());
    }

    #[test]
    fn token_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{LONG}\n")).unwrap();
        let file = path.to_str().unwrap();
        let o = options(&["--bind", "0.0.0.0:7777", "--token-file", file]).unwrap();
        assert_eq!(o.token.as_deref(), Some(LONG));
        std::fs::write(&path, "  \n").unwrap();
        let err = options(&["--token-file", file]).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
        let missing = dir.path().join("nope");
        let err = options(&["--token-file", missing.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read the token file"), "{err}");
        let err = options(&["--token", "x", "--token-file", file])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn allowed_hosts_and_secure_cookie() {
        let o = options(&[
            "--allow-host",
            "dash.example.com",
            "--allow-host",
            "other.example:8443",
            "--secure-cookie",
        ])
        .unwrap();
        assert_eq!(o.allowed_hosts, ["dash.example.com", "other.example:8443"]);
        assert!(o.secure_cookie);
        let err = options(&["--allow-host", "http://x/"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a host name"), "{err}");
    }
}
