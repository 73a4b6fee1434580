//! What an exchange's signature binds, and where the guard reads the endpoint it executes: the
//! two facts the registry ([`crate::exchanges::ALL`]) records per exchange id.

/// What an exchange's signature binds: the parts of a request that the verifier recomputes
/// from what it receives and that the signature therefore fixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Binding {
    /// The HTTP method.
    pub method: bool,
    /// The URL path (the endpoint).
    pub path: bool,
    /// The host.
    pub host: bool,
    /// The query string.
    pub query: bool,
    /// The body.
    pub body: bool,
    /// A timestamp, nonce or expiry.
    pub time: bool,
}

impl Binding {
    /// Binds method, path, query, body and time (the common `ts‖METHOD‖path‖body` schemes).
    pub const REQUEST: Binding = Binding {
        method: true,
        path: true,
        host: false,
        query: true,
        body: true,
        time: true,
    };

    /// Binds the parameters (query and body) and time only: the path is not signed.
    pub const PARAMS: Binding = Binding {
        method: false,
        path: false,
        host: false,
        query: true,
        body: true,
        time: true,
    };

    /// The same binding, changing one part.
    pub const fn with(self, part: &str, on: bool) -> Binding {
        let mut b = self;
        match part.as_bytes() {
            b"method" => b.method = on,
            b"path" => b.path = on,
            b"host" => b.host = on,
            b"query" => b.query = on,
            b"body" => b.body = on,
            b"time" => b.time = on,
            _ => {}
        }
        b
    }

    /// [`Binding::describe`], made once per combination (the audit line of every guarded
    /// signature carries it).
    pub(crate) fn describe_static(&self) -> &'static str {
        static ALL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let all = ALL.get_or_init(|| (0..64u8).map(|b| Binding::of_bits(b).describe()).collect());
        let bits = u8::from(self.method)
            | u8::from(self.path) << 1
            | u8::from(self.host) << 2
            | u8::from(self.query) << 3
            | u8::from(self.body) << 4
            | u8::from(self.time) << 5;
        &all[usize::from(bits)]
    }

    /// The binding whose parts are the bits of `bits` (method, path, host, query, body, time
    /// from the lowest), as `describe_static` indexes them.
    fn of_bits(bits: u8) -> Binding {
        let on = |i: u8| bits & (1 << i) != 0;
        Binding {
            method: on(0),
            path: on(1),
            host: on(2),
            query: on(3),
            body: on(4),
            time: on(5),
        }
    }

    /// The bound parts, comma-separated (`method,path,query,body,time`).
    pub fn describe(&self) -> String {
        let parts = [
            ("method", self.method),
            ("path", self.path),
            ("host", self.host),
            ("query", self.query),
            ("body", self.body),
            ("time", self.time),
        ];
        parts
            .iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Where the guard reads the endpoint an exchange will execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointFrom {
    /// The signed URL path.
    Path,
    /// A member of the signed body names it (Gemini `request`, Crypto.com `method`); it must
    /// equal the path.
    BodyMember(&'static str),
    /// The path is not signed: the signature is good at every endpoint whose required
    /// parameters it carries, so the guard judges the parameter set.
    Params,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_description_is_the_description_of_every_combination() {
        for bits in 0..64u8 {
            let b = Binding::of_bits(bits);
            assert_eq!(b.describe_static(), b.describe(), "{b:?}");
        }
        // The bits are the parts, each once.
        let all = Binding::of_bits(63);
        assert!(all.method && all.path && all.host && all.query && all.body && all.time);
        assert_eq!(Binding::of_bits(1 << 3).describe(), "query");
    }
}
