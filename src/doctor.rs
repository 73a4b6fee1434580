//! Module and key health checks (issue 6). Placeholder until the checks land.
