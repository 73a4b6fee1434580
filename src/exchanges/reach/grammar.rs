//! The strict grammars exchanges share: they refuse rather than rewrite.

use super::Inputs;
use crate::error::Result;

/// Checks that the method is one of `allowed` (upper case, exactly).
pub fn method<'m>(inputs: &Inputs<'_>, value: &'m str, allowed: &[&str]) -> Result<&'m str> {
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(inputs.refuse("method", format!("must be one of {}", allowed.join(", "))))
    }
}

/// A URL path: starts with `prefix` (which starts with `/`), then segments of
/// `A-Z a-z 0-9 - _ . ~ :` (no `%`, no `?`, no empty, `.` or `..` segment, no trailing `/`).
/// What the exchange's router reads is then exactly these bytes.
pub fn path<'p>(inputs: &Inputs<'_>, value: &'p str, prefix: &str) -> Result<&'p str> {
    path_with(inputs, value, prefix, b"-_.~:")
}

/// As [`path`], with the characters `extra` allowed in segments besides `A-Z a-z 0-9`.
pub fn path_with<'p>(
    inputs: &Inputs<'_>,
    value: &'p str,
    prefix: &str,
    extra: &[u8],
) -> Result<&'p str> {
    if !value.starts_with(prefix) {
        return Err(inputs.refuse("path", format!("must start with `{prefix}`")));
    }
    if value.len() > 512 {
        return Err(inputs.refuse("path", "is longer than 512 bytes"));
    }
    let Some(rest) = value.strip_prefix('/') else {
        return Err(inputs.refuse("path", "must start with `/`"));
    };
    for segment in rest.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(inputs.refuse(
                "path",
                "has an empty, `.` or `..` segment (or a trailing `/`)",
            ));
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
        {
            return Err(inputs.refuse(
                "path",
                "may hold only letters, digits and - _ . ~ : (no %, ?, # or spaces)",
            ));
        }
    }
    Ok(value)
}

/// Characters a query or form value may hold as written (besides `%XX` escapes).
const VALUE_EXTRA: &[u8] = b"-_.~,:*+/@!$'()";

/// A query string or form body as written: `name=value` pairs joined by single `&`, names of
/// `A-Z a-z 0-9 - _ . [ ]`, values of `A-Z a-z 0-9 - _ . ~ , : * + / @ ! $ ' ( )` and valid
/// `%XX` escapes; no duplicate name, no empty pair, no leading `?`. Returns the names.
pub fn form(inputs: &Inputs<'_>, field: &str, value: &str) -> Result<Vec<String>> {
    form_with(inputs, field, value, VALUE_EXTRA)
}

/// As [`form`], with the characters `extra` allowed in values as written besides
/// `A-Z a-z 0-9` and `%XX` escapes.
pub fn form_with(
    inputs: &Inputs<'_>,
    field: &str,
    value: &str,
    extra: &[u8],
) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    if value.is_empty() {
        return Ok(names);
    }
    for pair in value.split('&') {
        let Some((name, v)) = pair.split_once('=') else {
            return Err(inputs.refuse(field, "every parameter must be `name=value`"));
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.[]".contains(&b))
        {
            return Err(inputs.refuse(
                field,
                "parameter names may hold only letters, digits and - _ . [ ]",
            ));
        }
        let bytes = v.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let hex = bytes.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(inputs.refuse(field, "has a `%` that is not a `%XX` escape"));
                }
                i += 3;
            } else if b.is_ascii_alphanumeric() || extra.contains(&b) {
                i += 1;
            } else {
                return Err(inputs.refuse(
                    field,
                    format!(
                        "value of `{name}` holds `{}`: percent-encode it",
                        char::from(b).escape_default()
                    ),
                ));
            }
        }
        if names.iter().any(|n| n == name) {
            return Err(inputs.refuse(field, format!("parameter `{name}` appears twice")));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// A JSON object body: parsed strictly (no duplicate member at any depth, nesting at most
/// 16 deep, nothing before `{` or after `}`). Returns the object.
pub fn json_object(
    inputs: &Inputs<'_>,
    field: &str,
    value: &str,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    if !value.starts_with('{') || !value.ends_with('}') {
        return Err(inputs.refuse(
            field,
            "must be a JSON object with nothing before `{` or after `}`",
        ));
    }
    match super::strict_json::parse(value) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(inputs.refuse(field, "must be a JSON object")),
        Err(e) => Err(inputs.refuse(field, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::Limits;

    fn inputs(limits: &Limits) -> Inputs<'_> {
        Inputs::new("test", 1_700_000_000_000, limits, None, None)
    }

    #[test]
    fn grammars_refuse_what_they_would_have_to_rewrite() {
        let limits = Limits::default();
        let i = inputs(&limits);
        assert!(path(&i, "/api/v3/order", "/api/").is_ok());
        for bad in [
            "/api/v3/order/",
            "/api//v3",
            "/api/./x",
            "/api/%77ithdraw",
            "/api/v3?x=1",
            "api/v3",
            "/api/v3 x",
            "/sapi/v1",
        ] {
            assert!(path(&i, bad, "/api/").is_err(), "{bad}");
        }
        assert_eq!(form(&i, "query", "a=1&b=%20x").unwrap(), vec!["a", "b"]);
        for bad in [
            "a=1&a=2", "a", "a=1&", "&a=1", "?a=1", "a=b=c", "a=%zz", "a=1 2", "a=é",
        ] {
            assert!(form(&i, "query", bad).is_err(), "{bad}");
        }
        assert!(json_object(&i, "body", r#"{"a":{"b":1}}"#).is_ok());
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            r#" {"a":1}"#,
            r#"{"a":1} "#,
            r#"[1]"#,
            r#"{"a":1}{"#,
        ] {
            assert!(json_object(&i, "body", bad).is_err(), "{bad}");
        }
    }
}
