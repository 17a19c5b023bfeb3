//! `#[steadfast::process]`: captures the source of a process function at
//! compile time, so the dashboard can show it — with the line where each
//! process stands highlighted — without the source tree; and emits the
//! function's *kind type*, so hosts start, signal and read its processes
//! checked at compile time.
//!
//! The function itself is left exactly as written. Next to it the macro
//! registers its name, file, first line and text with `steadfast`'s source
//! registry (every host that starts saves them in its store), and declares a
//! unit struct implementing `steadfast::ProcessKind`.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, FnArg, Ident, ItemFn, LitInt, ReturnType, Token};

/// Captures the source of the process function it is put on and declares its
/// kind type.
///
/// The function takes the `Process` handle, its input, and any number of
/// further arguments that the host provides (`HostBuilder::provide`); it
/// returns `Result<Output, Error>`. The kind type is named after the function
/// in `CamelCase` (`credit_card` → `CreditCard`), and the kind's name is the
/// function's name:
///
/// ```ignore
/// #[steadfast::process]
/// async fn onboarding(p: Process, email: String) -> Result<(), StepFailed> {
///     p.step("registered", || register(&email)).await?;
///     Ok(())
/// }
/// // host.start::<Onboarding>("user-42", &email)
/// ```
///
/// Arguments, all optional: `name = "credit card"` (the kind's stored name,
/// a string or a `const`),
/// `kind = CardKind` (the type's name), `version = 2` (see
/// `HostBuilder::register_version`).
#[proc_macro_attribute]
pub fn process(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = match syn::parse::<Options>(attr) {
        Ok(options) => options,
        Err(e) => return e.to_compile_error().into(),
    };
    let registration = match source_registration(&item) {
        Ok(tokens) => tokens,
        Err(e) => return e.to_compile_error().into(),
    };
    let function: ItemFn = match syn::parse(item.clone()) {
        Ok(function) => function,
        Err(e) => return e.to_compile_error().into(),
    };
    let kind = match kind_type(&function, &options) {
        Ok(tokens) => tokens,
        Err(e) => return e.to_compile_error().into(),
    };
    let mut out = item;
    out.extend(TokenStream::from(registration));
    out.extend(TokenStream::from(kind));
    out
}

/// The attribute's arguments.
#[derive(Default)]
struct Options {
    name: Option<Expr>,
    kind: Option<Ident>,
    version: Option<LitInt>,
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Options::default();
        let pairs = Punctuated::<Arg, Token![,]>::parse_terminated(input)?;
        for arg in pairs {
            match arg {
                Arg::Name(lit) => options.name = Some(lit),
                Arg::Kind(ident) => options.kind = Some(ident),
                Arg::Version(lit) => options.version = Some(lit),
            }
        }
        Ok(options)
    }
}

enum Arg {
    Name(Expr),
    Kind(Ident),
    Version(LitInt),
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        match key.to_string().as_str() {
            "name" => Ok(Arg::Name(input.parse()?)),
            "kind" => Ok(Arg::Kind(input.parse()?)),
            "version" => {
                let lit: LitInt = input.parse()?;
                lit.base10_parse::<u32>()?;
                Ok(Arg::Version(lit))
            }
            other => Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown argument `{other}` of #[steadfast::process] \
                     (expected `name = \"...\"`, `kind = Type` or `version = N`)"
                ),
            )),
        }
    }
}

/// Registers the function's source with `steadfast`'s source registry.
fn source_registration(item: &TokenStream) -> syn::Result<proc_macro2::TokenStream> {
    let tokens: Vec<proc_macro::TokenTree> = item.clone().into_iter().collect();
    let name = function_name(&tokens).ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "#[steadfast::process] goes on a function",
        )
    })?;
    let (Some(first), Some(last)) = (tokens.first(), tokens.last()) else {
        return Ok(proc_macro2::TokenStream::new());
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
    Ok(quote! {
        ::steadfast::__private::inventory::submit! {
            ::steadfast::__private::ProcessSource {
                name: #name, file: #file, first_line: #first_line, text: #text
            }
        }
    })
}

/// The kind type and its `ProcessKind` implementation.
fn kind_type(function: &ItemFn, options: &Options) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &function.sig;
    let fn_name = &sig.ident;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "#[steadfast::process] goes on an `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a process function cannot be generic: its kind type names one input and one output type",
        ));
    }
    let mut args = sig.inputs.iter();
    let usage = "a process function takes `(p: Process, input: Input, ...)`: the handle, its input, \
                 then any values the host provides";
    let (Some(FnArg::Typed(process)), Some(FnArg::Typed(input))) = (args.next(), args.next())
    else {
        return Err(syn::Error::new_spanned(&sig.inputs, usage));
    };
    let input_type = &input.ty;
    // `Process` or `Process<S>`: what the function knows of its store.
    let process_type = &process.ty;
    let mut provided_names = Vec::new();
    let mut provided_types = Vec::new();
    for (i, arg) in args.enumerate() {
        let FnArg::Typed(arg) = arg else {
            return Err(syn::Error::new_spanned(arg, usage));
        };
        provided_names.push(format_ident!("provided_{i}"));
        provided_types.push(&arg.ty);
    }
    let ReturnType::Type(_, returns) = &sig.output else {
        return Err(syn::Error::new_spanned(
            sig,
            "a process function returns `Result<Output, Error>`",
        ));
    };
    let (kind_name, shown_name) = match &options.name {
        Some(expr) => (quote!(#expr), quote!(#expr).to_string()),
        None => {
            let name = fn_name.to_string();
            (quote!(#name), format!("{name:?}"))
        }
    };
    let version = match &options.version {
        Some(lit) => lit.base10_parse::<u32>()?,
        None => 1,
    };
    let type_name = options
        .kind
        .clone()
        .unwrap_or_else(|| Ident::new(&camel_case(&fn_name.to_string()), fn_name.span()));
    let vis = &function.vis;
    let doc = format!(
        "The process kind of [`{fn_name}`] (stored as {shown_name}, version {version}), \
         emitted by `#[steadfast::process]`: start its processes with `Host::start::<{type_name}>` \
         and register it with `HostBuilder::register_kind::<{type_name}>`."
    );
    Ok(quote! {
        #[doc = #doc]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        #vis struct #type_name;

        impl ::steadfast::ProcessKind for #type_name {
            const NAME: &'static str = #kind_name;
            const VERSION: u32 = #version;
            type Input = #input_type;
            type Output = <#returns as ::steadfast::__private::ProcessResult>::Output;
            type Error = <#returns as ::steadfast::__private::ProcessResult>::Error;

            fn function(
                provided: &::steadfast::Provided,
            ) -> ::core::result::Result<::steadfast::KindFn<Self>, ::steadfast::NotProvided> {
                let store = <<#process_type as ::steadfast::__private::ProcessParam>::Store
                    as ::steadfast::ProcessStore>::from_host(provided)?;
                #( let #provided_names: #provided_types = provided.get::<#provided_types>()?; )*
                ::core::result::Result::Ok(::std::sync::Arc::new(
                    move |p: ::steadfast::Process, input: #input_type| {
                        ::std::boxed::Box::pin(#fn_name(
                            <#process_type as ::steadfast::__private::ProcessParam>::bind(
                                p, &store,
                            ),
                            input,
                            #( ::core::clone::Clone::clone(&#provided_names), )*
                        )) as ::steadfast::__private::KindFuture<Self>
                    },
                ))
            }
        }
    })
}

/// `credit_card` → `CreditCard`.
fn camel_case(name: &str) -> String {
    name.trim_start_matches("r#")
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The identifier after `fn`.
fn function_name(tokens: &[proc_macro::TokenTree]) -> Option<String> {
    use proc_macro::TokenTree;
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

#[cfg(test)]
mod tests {
    use super::camel_case;

    #[test]
    fn kind_type_names() {
        assert_eq!(camel_case("onboarding"), "Onboarding");
        assert_eq!(camel_case("credit_card"), "CreditCard");
        assert_eq!(camel_case("ten_steps"), "TenSteps");
        assert_eq!(camel_case("r#type"), "Type");
    }
}
