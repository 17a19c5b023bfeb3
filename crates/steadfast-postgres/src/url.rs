//! The `postgres://` URLs Steadfast accepts: what the driver understands,
//! plus `schema=NAME`; anything else is refused rather than ignored.
//! Passwords never reach a message: see [`redact`].

use std::fmt;

use steadfast_core::StoreError;

/// The query parameters of a connection URL the driver understands.
const DRIVER_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// The parameter naming the schema that holds Steadfast's tables.
const SCHEMA_PARAMETER: &str = "schema";

/// A PostgreSQL connection URL, checked: `postgres://` or `postgresql://`,
/// with the driver's query parameters and an optional `schema=NAME`.
///
/// Its `Display` and `Debug` forms hide the password.
///
/// ```
/// use steadfast_postgres::PostgresUrl;
///
/// let url = PostgresUrl::parse("postgres://app:s3cret@db:5432/orders?schema=billing").unwrap();
/// assert_eq!(url.schema(), Some("billing"));
/// assert_eq!(url.to_string(), "postgres://app:***@db:5432/orders?schema=billing");
/// assert!(!format!("{url:?}").contains("s3cret"));
/// assert!(PostgresUrl::parse("postgres://db/orders?shema=billing").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    /// The URL as given.
    given: String,
    /// The URL without `schema`, for the driver.
    driver: String,
    /// The `schema` parameter, if any.
    schema: Option<String>,
}

impl PostgresUrl {
    /// Checks `url`: the scheme, the syntax and every query parameter.
    /// Errors are [`StoreError::InvalidInput`] and show the URL without its
    /// password.
    pub fn parse(url: &str) -> Result<PostgresUrl, StoreError> {
        let invalid = |detail: String| {
            StoreError::InvalidInput(format!("invalid PostgreSQL URL {}: {detail}", redact(url)))
        };
        let parsed = ::url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(invalid(format!(
                "the scheme is {:?}; use postgres:// or postgresql://",
                parsed.scheme()
            )));
        }
        let mut schema = None;
        let mut kept = Vec::new();
        for (key, value) in parsed.query_pairs() {
            if key == SCHEMA_PARAMETER {
                if schema.is_some() {
                    return Err(invalid("the schema parameter is given twice".to_owned()));
                }
                schema = Some(value.into_owned());
            } else if DRIVER_PARAMETERS.contains(&&*key)
                || (key.starts_with("options[") && key.ends_with(']'))
            {
                kept.push((key.into_owned(), value.into_owned()));
            } else {
                return Err(invalid(format!(
                    "unknown parameter {:?}; known parameters: {SCHEMA_PARAMETER}, {}",
                    shorten(&key, 40),
                    DRIVER_PARAMETERS.join(", ")
                )));
            }
        }
        let mut driver = parsed.clone();
        if kept.is_empty() {
            driver.set_query(None);
        } else {
            driver.query_pairs_mut().clear().extend_pairs(&kept);
        }
        Ok(PostgresUrl {
            given: url.to_owned(),
            driver: driver.into(),
            schema,
        })
    }

    /// The `schema` parameter, if the URL has one.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The URL as given (with its password: do not print it).
    pub fn as_str(&self) -> &str {
        &self.given
    }

    /// The URL the driver connects with: without `schema`.
    pub(crate) fn driver_url(&self) -> &str {
        &self.driver
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.given))
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresUrl")
            .field(&redact(&self.given))
            .finish()
    }
}

/// `text` with the password of every URL in it (`scheme://user:PASSWORD@`)
/// and every `password=` parameter replaced by `***`, for messages and
/// logs.
///
/// ```
/// use steadfast_postgres::redact;
///
/// assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
/// assert_eq!(redact("postgres://h/db?user=u&password=pw"), "postgres://h/db?user=u&password=***");
/// assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
/// ```
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(user_end) => {
                let userinfo = &authority[..user_end];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[user_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_password_parameters(&out)
}

/// Replaces the value of every `password=` query parameter.
fn redact_password_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("password=") {
        let starts_parameter = at == 0 || matches!(rest.as_bytes()[at - 1], b'?' | b'&' | b' ');
        let (head, tail) = rest.split_at(at + "password=".len());
        out.push_str(head);
        if starts_parameter {
            let end = tail
                .find(|c: char| matches!(c, '&' | '#') || c.is_whitespace())
                .unwrap_or(tail.len());
            out.push_str("***");
            rest = &tail[end..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// At most `max` characters of `text`, with a marker when cut.
fn shorten(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let short: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{short}…")
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_schema_and_keeps_driver_parameters() {
        let url =
            PostgresUrl::parse("postgres://u:pw@h/db?schema=app&sslmode=disable").expect("valid");
        assert_eq!(url.schema(), Some("app"));
        assert_eq!(url.driver_url(), "postgres://u:pw@h/db?sslmode=disable");
        let url = PostgresUrl::parse("postgresql://h/db").expect("valid");
        assert_eq!(url.schema(), None);
        assert_eq!(url.driver_url(), "postgresql://h/db");
        let url = PostgresUrl::parse("postgres://h/db?schema=app").expect("valid");
        assert_eq!(url.driver_url(), "postgres://h/db");
    }

    #[test]
    fn refuses_unknown_parameters_and_bad_urls_without_the_password() {
        for bad in [
            "postgres://u:pw@h/db?schem=app",
            "postgres://u:pw@h/db?schema=a&schema=b",
            "mysql://u:pw@h/db",
            "postgres://u:pw@h:notaport/db",
        ] {
            let err = PostgresUrl::parse(bad).expect_err(bad).to_string();
            assert!(!err.contains("pw"), "{err}");
            assert!(err.contains("u:***@h"), "{err}");
        }
    }

    #[test]
    fn redacts_passwords_everywhere() {
        assert_eq!(
            redact("cannot open postgres://u:p@ss:w0rd@h:5432/db (schema x)"),
            "cannot open postgres://u:***@h:5432/db (schema x)"
        );
        assert_eq!(
            redact("postgres://h/db?password=pw&sslmode=disable"),
            "postgres://h/db?password=***&sslmode=disable"
        );
        assert_eq!(redact("no url here"), "no url here");
    }
}
