//! `#[steadfast::process]`: captures the source of a process function at
//! compile time, so the dashboard can show it — with the line where each
//! process stands highlighted — without the source tree.
//!
//! The function itself is left exactly as written. Next to it the macro
//! registers its name, file, first line and text with `steadfast`'s source
//! registry; every host that starts saves them in its store.

use proc_macro::{Delimiter, Span, TokenStream, TokenTree};

/// Captures the source of the process function it is put on.
///
/// ```ignore
/// #[steadfast::process]
/// async fn onboarding(p: Process, email: String) -> Result<(), StepFailed> {
///     p.step("registered", || register(&email)).await?;
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn process(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error(
            Span::call_site(),
            "#[steadfast::process] takes no arguments",
        );
    }
    let tokens: Vec<TokenTree> = item.clone().into_iter().collect();
    let Some(name) = function_name(&tokens) else {
        return error(
            Span::call_site(),
            "#[steadfast::process] goes on a function",
        );
    };
    let (Some(first), Some(last)) = (tokens.first(), tokens.last()) else {
        return item;
    };
    let first_line = first.span().line();
    let last_line = last.span().end().line();
    let file = first.span().file();
    let text = first
        .span()
        .local_file()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|source| lines(&source, first_line, last_line))
        .unwrap_or_else(|| item.to_string());
    let registration = format!(
        "::steadfast::__private::inventory::submit! {{ \
             ::steadfast::__private::ProcessSource {{ \
                 name: {name:?}, file: {file:?}, first_line: {first_line}, text: {text:?} \
             }} \
         }}"
    );
    let mut out = item;
    match registration.parse::<TokenStream>() {
        Ok(tokens) => out.extend(tokens),
        Err(e) => {
            return error(
                Span::call_site(),
                &format!("cannot register the source: {e}"),
            );
        }
    }
    out
}

/// The identifier after `fn`.
fn function_name(tokens: &[TokenTree]) -> Option<String> {
    let at = tokens
        .iter()
        .position(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "fn"))?;
    match tokens.get(at + 1)? {
        TokenTree::Ident(name) => Some(name.to_string()),
        _ => None,
    }
}

/// Lines `first..=last` (1-based) of `source`.
fn lines(source: &str, first: usize, last: usize) -> String {
    source
        .lines()
        .skip(first.saturating_sub(1))
        .take(last.saturating_sub(first) + 1)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `compile_error!` at `span`.
fn error(span: Span, message: &str) -> TokenStream {
    let mut tokens: TokenStream = format!("::core::compile_error!({message:?});")
        .parse()
        .unwrap_or_default();
    tokens = tokens
        .into_iter()
        .map(|mut t| {
            t.set_span(span);
            t
        })
        .collect();
    let _ = Delimiter::None;
    tokens
}
