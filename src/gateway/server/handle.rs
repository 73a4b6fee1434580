//! One request through the gateway: the peer's uid, the target, the body; a public request
//! forwarded as is; a signed one through the client's rate, the key's allow-list, the exchange's
//! wire form, the token (policy, rate limits, audit) and the rebuilt request's check.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::StatusCode;
use serde_json::json;

use super::log::Seen;
use super::reply::{connection_named, error, error_with, forward, is_hop_by_hop, Body};
use super::target::target;
use super::Shared;
use crate::error::Error;
use crate::gateway::forms::{self, Http};
use crate::gateway::peer::Peer;

pub(super) async fn handle<'a>(
    shared: &'a Shared,
    peer: Peer,
    req: hyper::Request<Incoming>,
    seen: &mut Seen<'a>,
) -> hyper::Response<Body> {
    let config = &shared.config;
    if peer.uid == shared.own_uid && !config.allow_same_uid {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "uid {} is the gateway's own uid: such a process can read the gateway's memory \
                 and files; run the bot as another user, or set `allow_same_uid = true` in \
                 [gateway] (tests and development only)",
                peer.uid
            ),
        );
    }
    let target = match target(config, req.uri()) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let route = target.route;
    seen.route = Some(route);
    if seen.on {
        seen.endpoint = Some(target.path.clone());
    }
    let method = req.method().clone();
    let mut headers = Vec::new();
    let named = connection_named(req.headers());
    for (name, value) in req.headers() {
        let n = name.as_str();
        if is_hop_by_hop(n, &named) || n == "host" || n == "content-length" {
            continue;
        }
        let Ok(v) = value.to_str() else {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("header `{n}` is not visible ASCII"),
            );
        };
        headers.push((name.to_string(), v.to_owned()));
    }
    let body = match Limited::new(req.into_body(), config.max_body)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("request body over {} bytes (max_body)", config.max_body),
            )
        }
        Err(e) => {
            tracing::debug!(error = %e, "client left mid-request");
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "request body incomplete",
            );
        }
    };
    let Some(form) = forms::form(&route.exchange) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "config",
            "route without a form",
        );
    };
    let body_text = String::from_utf8(body.to_vec()).ok();
    let http = Http {
        method: method.as_str().to_owned(),
        host: route.host.clone(),
        path: target.path,
        qmark: target.query.is_some(),
        query: target.query.unwrap_or_default(),
        headers,
        body: body_text.clone().unwrap_or_default(),
    };
    let signed = body_text.is_some() && form.is_signed(&http);
    seen.signed = signed;
    if !signed {
        if !route.public {
            return error(
                StatusCode::FORBIDDEN,
                "public_refused",
                &format!(
                    "route `{}` forwards signed requests only (public = false)",
                    route.name
                ),
            );
        }
        return forward(shared, route, &http, body, None).await;
    }
    // Signed: the client's rate first (so refusals cannot probe at full speed), the key's
    // allow-list, then the exchange's canonical form, policy and the token.
    if shared.limiter.check_key(&peer.uid).is_err() {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "client over its rate limit (gateway rate_per_second/burst)",
        );
    }
    // An unknown gid (the holding process was not found) matches no gid in the list.
    let allowed = config.keys.get(&route.key).is_some_and(|a| {
        // Primary and supplementary groups, as the agent checks them (a bot added to the
        // bots' group with `usermod -aG` has it as a supplementary group).
        let gids = peer.gid.into_iter().chain(peer.groups.iter().copied());
        a.allows_groups(peer.uid, gids, &route.exchange)
    });
    if !allowed {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "uid {} may not sign `{}` requests with key `{}` ([gateway.keys])",
                peer.uid, route.exchange, route.key
            ),
        );
    }
    let request = match form.request(&http) {
        Ok(r) => r,
        Err(reason) => {
            return error(
                StatusCode::BAD_REQUEST,
                "request_refused",
                &format!("{}: {reason}", route.exchange),
            )
        }
    };
    let (key, exchange, client) = (route.key.clone(), route.exchange.clone(), peer.audit_name());
    let result = shared
        .custody
        .run(move |c| {
            c.exchange_signer_for(&key, &exchange)?
                .sign_as(&request, &client)
                .map(|s| s.into_owned())
        })
        .await;
    let signed = match result {
        Ok(s) => s,
        Err(e) => return refusal(&e),
    };
    let out = match form.rebuild(&http, &signed) {
        Ok(out) => out,
        Err(reason) => {
            return error(
                StatusCode::BAD_REQUEST,
                "request_refused",
                &format!(
                    "{}: the re-signed request would differ from the bot's: {reason}",
                    route.exchange
                ),
            )
        }
    };
    let body = Bytes::from(out.body.clone());
    forward(shared, route, &out, body, Some(peer)).await
}

/// The JSON reply for a crate error from signing.
fn refusal(e: &Error) -> hyper::Response<Body> {
    let (status, kind) = match e {
        Error::PolicyDenied { .. } => (StatusCode::FORBIDDEN, "policy_denied"),
        Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Error::RequestRefused { .. } | Error::InvalidInput(_) | Error::WrongExchange { .. } => {
            (StatusCode::BAD_REQUEST, "request_refused")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "signing_failed"),
    };
    let mut err = json!({"kind": kind, "message": e.to_string()});
    if let Error::PolicyDenied { key, rule, .. } | Error::RateLimited { key, rule } = e {
        err["key"] = json!(key);
        err["rule"] = json!(rule);
    }
    error_with(status, err)
}
