//! The request target: which route a bot's request is for, and the exchange path and query.

use super::reply::{error, Body};
use crate::gateway::config::{GatewayConfig, Route};
use crate::gateway::forms;
use hyper::StatusCode;

/// Where a request goes: the route and the exchange path and query.
pub(super) struct Target<'a> {
    pub(super) route: &'a Route,
    pub(super) path: String,
    pub(super) query: Option<String>,
}

/// Reads the request target: ccxt's proxy-URL form (`/https://host/path?q`, or all of it
/// percent-encoded) or the base-URL form (`/<route>/<path>?q`).
pub(super) fn target<'a>(
    config: &'a GatewayConfig,
    uri: &hyper::Uri,
) -> std::result::Result<Target<'a>, Box<hyper::Response<Body>>> {
    let raw = uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str);
    let rest = raw.strip_prefix('/').unwrap_or(raw);
    let lower = rest.get(..10).unwrap_or(rest).to_ascii_lowercase();
    if lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("http%3a")
        || lower.starts_with("https%3a")
    {
        let url = if lower.starts_with("http%3a") || lower.starts_with("https%3a") {
            forms::decode_component(rest)
        } else {
            rest.to_owned()
        };
        let Some(after) = url.strip_prefix("https://").or_else(|| {
            url.get(..8)
                .filter(|p| p.eq_ignore_ascii_case("https://"))
                .map(|_| &url[8..])
        }) else {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "bad_target",
                "only https:// exchange URLs are forwarded",
            )));
        };
        let (authority, path_query) = match after.find(['/', '?']) {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, "/"),
        };
        let host = authority
            .strip_suffix(":443")
            .unwrap_or(authority)
            .to_ascii_lowercase();
        let (path, query) = split_query(path_query);
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        refuse_dot_segments(&path)?;
        // Routes are matched on the decoded path: `/api/v1/%70rivate` is under
        // `/api/v1/private`, as the exchange reads it.
        let Some(route) = config.route_for(&host, &forms::decode_component(&path)) else {
            return Err(Box::new(not_routed(&format!("{host}{path}"))));
        };
        return Ok(Target { route, path, query });
    }
    let (name, after) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let Some(route) = config.routes.iter().find(|r| r.name == name) else {
        return Err(Box::new(not_routed(name)));
    };
    let (path, query) = split_query(after);
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    refuse_dot_segments(&path)?;
    // The host's route for this path must be this one: a path under another route's prefix
    // (or outside this route's) is that route's, with its key.
    if config
        .route_for(&route.host, &forms::decode_component(&path))
        .is_none_or(|r| r.name != route.name)
    {
        return Err(Box::new(not_routed(&format!("{name}{path}"))));
    }
    Ok(Target { route, path, query })
}

/// Refuses a path with a `.` or `..` segment (percent-encoded or not): an exchange may resolve
/// it to a path outside the route's prefix, and no exchange API uses one.
fn refuse_dot_segments(path: &str) -> std::result::Result<(), Box<hyper::Response<Body>>> {
    let dotted = path.split('/').any(|seg| {
        let seg = forms::decode_component(seg);
        seg == "." || seg == ".."
    });
    if dotted {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_target",
            "a path with a `.` or `..` segment is not forwarded",
        )));
    }
    Ok(())
}

fn split_query(path_query: &str) -> (String, Option<String>) {
    match path_query.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (path_query.to_owned(), None),
    }
}

fn not_routed(what: &str) -> hyper::Response<Body> {
    error(
        StatusCode::FORBIDDEN,
        "not_routed",
        &format!(
            "`{what}` is not a route of this gateway (no open proxy); add a [[gateway.route]]"
        ),
    )
}
