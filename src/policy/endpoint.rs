//! Endpoint patterns (`METHOD /path/glob`) and the path normalisation that runs before any
//! pattern is matched.

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};

/// One `allow` or `deny` entry: an optional HTTP method and a path glob.
///
/// `"POST /api/v3/order"`, `"GET /api/v3/*"`, `"/sapi/**"` (any method), `"* /x"` (any method),
/// `"POST /api/v3/order params=symbol,side,type,quantity,price,timeInForce"` (for exchanges that
/// do not sign the path: the parameter names the request may carry).
/// In the glob, `*` and `?` stay within one path segment, `**` spans segments, `{a,b}` and
/// `[ab]` work as usual. Methods compare case-insensitively, paths case-sensitively.
#[derive(Clone, Debug)]
pub struct EndpointPattern {
    text: String,
    method: Option<String>,
    matcher: GlobMatcher,
    literal: bool,
    params: Option<Vec<String>>,
}

impl EndpointPattern {
    /// Parses `"METHOD /path"` or `"/path"`.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty pattern or an invalid glob.
    pub fn parse(text: &str) -> Result<Self> {
        Self::build(text, false)
    }

    /// A case-insensitive pattern (the withdrawal guard's table).
    pub(crate) fn parse_case_insensitive(text: &str) -> Result<Self> {
        Self::build(text, true)
    }

    fn build(text: &str, case_insensitive: bool) -> Result<Self> {
        let trimmed = text.trim();
        let (trimmed_pattern, params) = match trimmed.rsplit_once(char::is_whitespace) {
            Some((head, last)) if last.starts_with("params=") => {
                let list = &last["params=".len()..];
                let names: Vec<String> = list
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
                if names.iter().any(|n| {
                    !n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.[]".contains(&b))
                }) {
                    return Err(Error::Config(format!(
                        "endpoint pattern `{}`: parameter names are letters, digits and - _ . [ ]",
                        text.escape_debug()
                    )));
                }
                (head.trim_end(), Some(names))
            }
            _ => (trimmed, None),
        };
        let (method, path) = match trimmed_pattern.split_once(char::is_whitespace) {
            Some((m, p)) => (Some(m.trim()), p.trim()),
            None => (None, trimmed_pattern),
        };
        if path.is_empty() {
            return Err(Error::Config(format!(
                "endpoint pattern `{}` has no path",
                text.escape_debug()
            )));
        }
        let method = method.filter(|m| *m != "*").map(|m| m.to_ascii_uppercase());
        let path = trim_trailing_slash(path);
        let matcher = GlobBuilder::new(path)
            .literal_separator(true)
            .case_insensitive(case_insensitive)
            .build()
            .map_err(|e| {
                Error::Config(format!(
                    "endpoint pattern `{}`: {}",
                    text.escape_debug(),
                    e.kind()
                ))
            })?
            .compile_matcher();
        let literal = method.is_some() && !path.contains(['*', '?', '[', '{']);
        Ok(EndpointPattern {
            text: trimmed.to_owned(),
            method,
            matcher,
            literal,
            params,
        })
    }

    /// Whether `method` and the normalised `path` match.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.matcher.is_match(path)
    }

    /// Whether this names one exact endpoint (a method and a path without wildcards): only such
    /// a pattern can lift the withdrawal guard for that endpoint.
    pub fn is_exact(&self) -> bool {
        self.literal
    }

    /// The parameter names the pattern permits (`params=a,b,c`), for exchanges that do not sign
    /// the path: a request it allows may carry no other parameter (besides those the crate adds
    /// itself: timestamp, receive window, API key, signature).
    pub fn params(&self) -> Option<&[String]> {
        self.params.as_deref()
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn trim_trailing_slash(path: &str) -> &str {
    if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    }
}

/// Normalises a request path for matching: drops any `?query` or `#fragment`, decodes `%XX`
/// escapes, collapses repeated `/`, drops a trailing `/`. Refuses (`None`) what a server might
/// read differently from the pattern: `.` or `..` segments, backslashes, control characters,
/// `%` left after decoding (double encoding), bytes that are not UTF-8.
pub(crate) fn normalize_path(raw: &str) -> Option<String> {
    let raw = raw.split(['?', '#']).next().unwrap_or("");
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(decoded).ok()?;
    if decoded.contains(['\\', '%']) || decoded.chars().any(char::is_control) {
        return None;
    }
    let mut out = String::with_capacity(decoded.len());
    for (n, segment) in decoded.split('/').enumerate() {
        if segment == "." || segment == ".." {
            return None;
        }
        if segment.is_empty() && n > 0 {
            continue;
        }
        if n > 0 {
            out.push('/');
        }
        out.push_str(segment);
    }
    if decoded.starts_with('/') && out.is_empty() {
        out.push('/');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_method_and_path() {
        let p = EndpointPattern::parse("GET /api/v3/*").unwrap();
        assert!(p.matches("GET", "/api/v3/order"));
        assert!(p.matches("get", "/api/v3/account"));
        assert!(!p.matches("POST", "/api/v3/order"));
        assert!(
            !p.matches("GET", "/api/v3/order/test"),
            "* stays in one segment"
        );
        let any = EndpointPattern::parse("/sapi/**").unwrap();
        assert!(any.matches("POST", "/sapi/v1/capital/withdraw/apply"));
        assert!(!any.is_exact());
        assert!(EndpointPattern::parse("POST /api/v3/order")
            .unwrap()
            .is_exact());
        assert!(EndpointPattern::parse("").is_err());
        assert!(EndpointPattern::parse("GET /a/[").is_err());
    }

    #[test]
    fn paths_are_normalised_or_refused() {
        assert_eq!(
            normalize_path("/api//v3/order/?x=1").as_deref(),
            Some("/api/v3/order")
        );
        assert_eq!(
            normalize_path("/sapi/v1/capital/%77ithdraw/apply").as_deref(),
            Some("/sapi/v1/capital/withdraw/apply")
        );
        assert_eq!(
            normalize_path("private/get").as_deref(),
            Some("private/get")
        );
        assert_eq!(normalize_path("").as_deref(), Some(""));
        assert_eq!(normalize_path("/").as_deref(), Some("/"));
        for bad in [
            "/api/../sapi",
            "/a/./b",
            "/a\\b",
            "/a%2577",
            "/a%zz",
            "/a\n",
            "/a%ff",
        ] {
            assert_eq!(normalize_path(bad), None, "{bad}");
        }
    }
}
