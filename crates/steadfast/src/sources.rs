//! The registry of process-function sources captured by
//! `#[steadfast::process]`, which hosts save in their store at start.

use steadfast_core::FunctionSource;

/// One function's source as the attribute macro registers it.
#[doc(hidden)]
#[derive(Debug)]
pub struct ProcessSource {
    /// The function's name.
    pub name: &'static str,
    /// The file, as `#[track_caller]` locations name it.
    pub file: &'static str,
    /// The line of `text`'s first line.
    pub first_line: usize,
    /// The function's source.
    pub text: &'static str,
}

inventory::collect!(ProcessSource);

/// Every function source registered by `#[steadfast::process]` in this
/// program, ordered by file and line.
pub fn process_sources() -> Vec<FunctionSource> {
    let mut all: Vec<FunctionSource> = inventory::iter::<ProcessSource>
        .into_iter()
        .map(|s| FunctionSource {
            name: s.name.to_owned(),
            file: s.file.to_owned(),
            first_line: u32::try_from(s.first_line).unwrap_or(u32::MAX),
            text: s.text.to_owned(),
        })
        .collect();
    all.sort_by(|a, b| (&a.file, a.first_line).cmp(&(&b.file, b.first_line)));
    all
}
