//! Query, form and JSON helpers for the wire forms: read and edit parameters and members and
//! keep everything else byte for byte.

/// The raw (still encoded) value of `name` in `a=b&c=d`.
pub(super) fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// `query` without its `name=...` pairs, the rest byte for byte.
pub(super) fn drop_params(query: &str, names: &[&str]) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty() && !names.contains(&p.split_once('=').map_or(*p, |(k, _)| k)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn decode_component(s: &str) -> String {
    percent_decode(s)
}

pub(super) fn json_member(body: &str, member: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get(member).map(|_| ()))
        .is_some()
}

pub(super) fn without_member(body: &str, member: &str) -> Option<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.as_object_mut()?.remove(member);
    Some(v)
}

/// The bot's JSON body text with member `member`'s value replaced by the signed body's: the
/// bot's member order and spacing are kept (the scheme signs a canonical string, not the body).
pub(super) fn json_with_member(bot: &str, signed: &str, member: &str) -> Result<String, String> {
    let ours: serde_json::Value =
        serde_json::from_str(signed).map_err(|_| "body: the signed body is not JSON".to_owned())?;
    let value = ours
        .get(member)
        .ok_or_else(|| format!("body: the signed body has no `{member}`"))?;
    let theirs: serde_json::Value =
        serde_json::from_str(bot).map_err(|_| "body: not JSON".to_owned())?;
    let old = theirs
        .get(member)
        .ok_or_else(|| format!("body: no `{member}` member"))?;
    let old_text = serde_json::to_string(old).map_err(|e| e.to_string())?;
    let new_text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    let needle = format!("\"{member}\":{old_text}");
    if bot.matches(&needle).count() != 1 {
        return Err(format!("body: `{member}` is not a plain top-level member"));
    }
    Ok(bot.replacen(&needle, &format!("\"{member}\":{new_text}"), 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_dropped_byte_for_byte() {
        assert_eq!(
            drop_params("a=1&signature=x&b=%20", &["signature"]),
            "a=1&b=%20"
        );
        assert_eq!(param("a=1&b=2", "b"), Some("2"));
        assert_eq!(
            percent_decode("2024-01-01T00%3A00%3A00"),
            "2024-01-01T00:00:00"
        );
    }

    #[test]
    fn a_json_member_is_replaced_in_place() {
        let out = json_with_member(r#"{"id":1,"sig":"aa","x":[1]}"#, r#"{"sig":"bb"}"#, "sig");
        assert_eq!(out.unwrap(), r#"{"id":1,"sig":"bb","x":[1]}"#);
    }
}
