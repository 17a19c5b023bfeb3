//! JSON arguments (payloads, inputs) given inline, from a file (`@PATH`) or
//! from standard input (`-`).

use std::io::Read;

use anyhow::{Context, bail};

/// The most bytes read from a file or standard input: far above the
/// library's payload limit (which gives the precise error), low enough that
/// a wrong file cannot exhaust memory.
const MAX_READ: u64 = 64 * 1024 * 1024;

/// The JSON text of an argument: `-` reads standard input, `@PATH` the file
/// at PATH, anything else is the JSON itself. The text is checked to be
/// valid JSON (`what` names it in the error, e.g. "the payload").
pub fn json_arg(arg: &str, what: &str) -> anyhow::Result<String> {
    let (text, source) = if arg == "-" {
        (
            read_limited(std::io::stdin().lock(), "standard input")?,
            "from standard input".to_owned(),
        )
    } else if let Some(path) = arg.strip_prefix('@') {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open {what} file {path:?}"))?;
        (read_limited(file, path)?, format!("from {path:?}"))
    } else {
        (arg.to_owned(), String::new())
    };
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        let shown = if source.is_empty() {
            format!(" {:?}", steadfast::shorten(&text))
        } else {
            format!(" {source}")
        };
        bail!(
            "{what}{shown} is not valid JSON ({e}); give JSON inline, `-` to read it from \
             standard input or `@PATH` to read it from a file"
        );
    }
    Ok(text)
}

/// Reads all of `reader` as UTF-8, refusing more than [`MAX_READ`] bytes.
fn read_limited(reader: impl Read, name: &str) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_READ + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {name}"))?;
    if bytes.len() as u64 > MAX_READ {
        bail!("{name} holds more than {MAX_READ} bytes; that is too large for a payload");
    }
    String::from_utf8(bytes).with_context(|| format!("{name} is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_file_and_invalid() -> anyhow::Result<()> {
        assert_eq!(json_arg("{\"a\":1}", "the input")?, "{\"a\":1}");
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("p.json");
        std::fs::write(&path, "[1, 2]")?;
        assert_eq!(
            json_arg(&format!("@{}", path.display()), "the input")?,
            "[1, 2]"
        );
        let err = json_arg("{nope", "the payload")
            .expect_err("invalid")
            .to_string();
        assert!(
            err.contains("the payload \"{nope\" is not valid JSON"),
            "{err}"
        );
        let long = format!("{{{}", "x".repeat(10_000));
        let err = json_arg(&long, "the payload")
            .expect_err("invalid")
            .to_string();
        assert!(err.len() < 400, "{err}");
        assert!(json_arg("@/nonexistent/file.json", "the input").is_err());
        Ok(())
    }
}
