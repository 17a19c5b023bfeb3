//! The process kinds a command line knows: none (the generic `steadfast`
//! binary), the built-in examples (`--examples`), or a program's own
//! ([`crate::run`]).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use steadfast::{Backend, Client, HostBuilder};
use steadfast_examples::{Services, register_all};

type Register = dyn Fn(HostBuilder) -> HostBuilder + Send + Sync;

/// The process kinds of a command line: what `worker` runs, what `spawn`
/// checks inputs against and what `check` replays journals against.
#[derive(Clone)]
pub(crate) struct Kinds(Known);

#[derive(Clone)]
enum Known {
    /// None: commands that need kinds explain how to get them.
    None,
    /// The example kinds of `steadfast-examples`, with their simulated
    /// services' folder.
    Examples,
    /// A program's own.
    Custom(Arc<Register>),
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Known::None => "Kinds::None",
            Known::Examples => "Kinds::Examples",
            Known::Custom(_) => "Kinds::Custom",
        })
    }
}

impl Kinds {
    /// No kinds (the generic binary).
    pub(crate) fn none() -> Kinds {
        Kinds(Known::None)
    }

    /// The built-in example kinds.
    pub(crate) fn examples() -> Kinds {
        Kinds(Known::Examples)
    }

    /// The kinds `register` adds to a host builder.
    pub(crate) fn custom<F>(register: F) -> Kinds
    where
        F: Fn(HostBuilder) -> HostBuilder + Send + Sync + 'static,
    {
        Kinds(Known::Custom(Arc::new(register)))
    }

    /// `builder` with the kinds registered, for `command`. The examples'
    /// services keep their files in `services` (created if missing).
    pub(crate) fn register(
        &self,
        builder: HostBuilder,
        services: &Path,
        command: &str,
    ) -> anyhow::Result<HostBuilder> {
        match &self.0 {
            Known::None => {
                self.require(command)?;
                Ok(builder)
            }
            Known::Examples => {
                let services = Services::open(services).with_context(|| {
                    format!("cannot open the services folder {}", services.display())
                })?;
                Ok(register_all(builder, Arc::new(services)))
            }
            Known::Custom(register) => Ok(register(builder)),
        }
    }

    /// A client with the kinds registered (spawn inputs are checked against
    /// them), for `command`.
    pub(crate) fn client(
        &self,
        store: Arc<dyn Backend>,
        services: &Path,
        command: &str,
    ) -> anyhow::Result<Client> {
        Ok(self
            .register(HostBuilder::from_arc(store), services, command)?
            .client())
    }

    /// Whether these are the built-in example kinds (whose services keep
    /// files in a folder).
    pub(crate) fn are_examples(&self) -> bool {
        matches!(self.0, Known::Examples)
    }

    /// Refuses `command` when there are no kinds, saying how to get them.
    pub(crate) fn require(&self, command: &str) -> anyhow::Result<()> {
        match self.0 {
            Known::None => Err(anyhow::anyhow!(missing(command))),
            _ => Ok(()),
        }
    }
}

/// What the generic binary says for a command that needs kind code.
fn missing(command: &str) -> String {
    format!(
        "`{command}` needs the code of your process kinds, which the generic `steadfast` binary \
         does not have. Give your program its own command line with the kinds registered:\n\n    \
         fn main() -> std::process::ExitCode {{\n        \
         steadfast_cli::run(|hosts| hosts.register_kind::<MyKind>())\n    }}\n\n\
         (crate `steadfast-cli`; see the README, \"Your own binary\"), then run `<your binary> \
         {command} …`. To try the example kinds built into this binary, pass --examples."
    )
}
