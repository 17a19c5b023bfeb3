//! A program's own command line: its process kinds registered once, and
//! every `steadfast` command works on them.
//!
//! ```sh
//! cargo run -p steadfast-cli --example own_cli -- --db greet.db spawn greet g-1 '"Ada"'
//! cargo run -p steadfast-cli --example own_cli -- --db greet.db worker --exit-when-idle
//! cargo run -p steadfast-cli --example own_cli -- --db greet.db show g-1
//! ```

use steadfast::{Process, StepFailed};

/// Greets someone, once.
#[steadfast::process]
async fn greet(p: Process, name: String) -> Result<String, StepFailed> {
    let greeting = p
        .step("greeted", || async { Ok(format!("Hello, {name}!")) })
        .await?;
    Ok(greeting)
}

fn main() -> std::process::ExitCode {
    steadfast_cli::run(|hosts| hosts.register_kind::<Greet>())
}
